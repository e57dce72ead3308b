"""Shared test set-up: every test gets its own bactrian data and config directories, and
nothing may reach a model hub."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# Real components, never skipped: a missing tool is a missing install step, and it must fail
# the run rather than hide behind skipped tests.
REQUIRED_TOOLS = (
    "dune",
    "ocamlfind",
    "ocamlc",
    "ocamllex",
    "cppo",
    "git",
    "hg",
    "bwrap",
    "patch",
    "inotifywait",
)
REQUIRED_OCAML_LIBS = ("alcotest", "ounit2", "oUnit")  # the CES tests' test runners


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if shutil.which("ocamlfind") is not None:
        missing += [
            f"the OCaml library {lib}"
            for lib in REQUIRED_OCAML_LIBS
            if subprocess.run(["ocamlfind", "query", lib], capture_output=True).returncode != 0
        ]
    if missing:
        raise pytest.UsageError(
            f"The tests need {', '.join(missing)} on PATH and it is not installed. Run "
            "`make test`, which installs every apt package the tests use."
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Security suites (uid drop, per-uid process limits, unreadable files) exercise code that
    # only runs as root: they run, or the run fails saying so; they never skip.
    if item.get_closest_marker("needs_root") and os.geteuid() != 0:
        pytest.fail(
            f"{item.nodeid} needs root (the sandbox's uid drop and per-uid limits only run as "
            "root): run the tests as root, as `make test` in the project's container does.",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def isolated_bactrian_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point bactrian's data and config dirs at a fresh temporary directory."""
    home = tmp_path_factory.mktemp("bactrian-home")
    monkeypatch.setenv("BACTRIAN_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.delenv("BACTRIAN_CONFIG", raising=False)
    return home
