"""No sidecar answers: each client says how to start one, and starts ``bactrian aid serve``
itself when the user allows it (``bactrian-start-server`` / ``start_server``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.editors.conftest import Sidecar, make_sidecar
from tests.editors.editor_run import HERE, check_ok, emacs_batch, nvim_headless, nvims


@pytest.fixture
def stopped(tmp_path: Path) -> Iterator[Sidecar]:
    """A sidecar set up but not started; whatever server a client starts is stopped after."""
    side = make_sidecar(tmp_path)
    try:
        yield side
    finally:
        side.stop()  # the server the client started wrote its pid beside the socket


def _serve(side: Sidecar) -> str:
    # what a user's `bactrian aid serve` is, with this test's config (the client adds --socket)
    cmd = [sys.executable, "-m", "bactrian.cli", "aid", "serve", "--config", str(side.config)]
    return json.dumps([*cmd, "--no-warm"])


def test_emacs_starts_the_sidecar_when_allowed(stopped: Sidecar) -> None:
    out = emacs_batch(
        stopped, "-l", "bactrian-autostart-test",
        "--eval", '(ert-run-tests-batch-and-exit "starts-the-sidecar\\\\|never-starts-unasked")',
        BACTRIAN_TEST_SERVE=_serve(stopped),
    )  # fmt: skip
    check_ok(out, "the Emacs autostart tests")
    assert "2 results as expected, 0 unexpected" in out.stderr, out.stderr


@pytest.mark.parametrize("which", [0, 1], ids=["debian-0.7", "current"])
def test_nvim_starts_the_sidecar_when_allowed(stopped: Sidecar, which: int) -> None:
    out = nvim_headless(
        stopped, nvims()[which], HERE / "nvim" / "test_autostart.lua",
        BACTRIAN_TEST_SERVE=_serve(stopped),
    )  # fmt: skip
    check_ok(out, "the Neovim autostart test")
    assert "1 passed, 0 failed" in out.stdout, out.stdout
