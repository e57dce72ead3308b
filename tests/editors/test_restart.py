"""The restart scenario, in each real editor: while the sidecar streams an answer it is
killed (SIGKILL) and a new one starts on the same socket, or it is replaced by ``bactrian aid
restart`` (``aid/restarting``, ``-32001``, takeover). The client fails the in-flight
request with a clear, retryable message, reconnects with the protocol's backoff, re-sends its
state (``initialize``), tells the user once, and the next ask succeeds — no editor restart."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.editors.conftest import Sidecar
from tests.editors.editor_run import (
    EMACS_DIR,
    HERE,
    NVIM_DIR,
    editor_env,
    emacs,
    nvim_version,
    nvims,
)


def _restart_mid_answer(
    side: Sidecar, cmd: list[str], sync: Path, env: dict[str, str], how: str
) -> str:
    proc = subprocess.Popen(
        cmd, env=env, cwd=side.workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (sync / "streaming").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.communicate(timeout=30)[0] if proc.poll() is not None else ""
                raise AssertionError(f"the editor never streamed an answer:\n{out}")
            time.sleep(0.05)
        if how == "kill":
            side.restart()  # a crash: SIGKILL, then a new server on the same socket
        else:
            side.redeploy()  # `bactrian aid restart`: aid/restarting, -32001, takeover
        out = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"{out}\n--- sidecar\n{side.log()}"
    return out


def _crash_during_feedback(side: Sidecar, cmd: list[str], sync: Path, env: dict[str, str]) -> str:
    """The sidecar is frozen before the client sends feedback, then killed and replaced:
    the feedback, unanswered, must reach the new server."""
    proc = subprocess.Popen(
        cmd, env=env, cwd=side.workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        for name in ("applied", "sent"):
            deadline = time.monotonic() + 60
            while not (sync / name).exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.communicate(timeout=30)[0] if proc.poll() is not None else ""
                    raise AssertionError(f"the editor never wrote {name}:\n{out}")
                time.sleep(0.05)
            if name == "applied":
                side.freeze()
                (sync / "frozen").touch()
        side.restart()
        out = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"{out}\n--- sidecar\n{side.log()}"
    return out


HOW = pytest.mark.parametrize("how", ["kill", "aid-restart"])


def _emacs_cmd(test: str) -> list[str]:
    return [
        emacs(), "--batch", "-q", "-L", str(EMACS_DIR), "-L", str(HERE / "emacs"),
        "-l", "bactrian-restart-test", "--eval", f'(ert-run-tests-batch-and-exit "{test}")',
    ]  # fmt: skip


def _nvim_cmd(nvim: str) -> list[str]:
    return [
        nvim, "--headless", "-u", "NONE", "-i", "NONE",
        "--cmd", f"set rtp^={NVIM_DIR} | runtime plugin/bactrian.lua",
        "-c", f"luafile {HERE / 'nvim' / 'test_restart.lua'}",
    ]  # fmt: skip


@HOW
def test_emacs_survives_a_sidecar_restart(sidecar: Sidecar, tmp_path: Path, how: str) -> None:
    sync = tmp_path / "sync"
    sync.mkdir()
    cmd = _emacs_cmd("bactrian-survives-a-restart")
    env = editor_env(sidecar, BACTRIAN_TEST_SYNC=str(sync))
    out = _restart_mid_answer(sidecar, cmd, sync, env, how)
    assert "1 results as expected, 0 unexpected" in out, out


@HOW
@pytest.mark.parametrize("which", [0, 1], ids=["debian-0.7", "current"])
def test_nvim_survives_a_sidecar_restart(
    sidecar: Sidecar, tmp_path: Path, which: int, how: str
) -> None:
    nvim = nvims()[which]
    sync = tmp_path / "sync"
    sync.mkdir()
    cmd = _nvim_cmd(nvim)
    env = editor_env(sidecar, BACTRIAN_TEST_SYNC=str(sync), XDG_STATE_HOME=str(tmp_path / "st"))
    out = _restart_mid_answer(sidecar, cmd, sync, env, how)
    assert "1 passed, 0 failed" in out, f"{nvim_version(nvim)}:\n{out}"


def test_emacs_feedback_in_flight_is_sent_again(sidecar: Sidecar, tmp_path: Path) -> None:
    sync = tmp_path / "sync"
    sync.mkdir()
    env = editor_env(sidecar, BACTRIAN_TEST_SYNC=str(sync))
    out = _crash_during_feedback(
        sidecar, _emacs_cmd("bactrian-feedback-survives-a-restart"), sync, env
    )
    assert "1 results as expected, 0 unexpected" in out, out


@pytest.mark.parametrize("which", [0, 1], ids=["debian-0.7", "current"])
def test_nvim_feedback_in_flight_is_sent_again(
    sidecar: Sidecar, tmp_path: Path, which: int
) -> None:
    sync = tmp_path / "sync"
    sync.mkdir()
    env = editor_env(
        sidecar, BACTRIAN_TEST_SYNC=str(sync), BACTRIAN_TEST_SCENARIO="feedback",
        XDG_STATE_HOME=str(tmp_path / "st"),
    )  # fmt: skip
    out = _crash_during_feedback(sidecar, _nvim_cmd(nvims()[which]), sync, env)
    assert "1 passed, 0 failed" in out, out
