"""A real sidecar process on a real Unix socket, with the scripted backend (or SmolLM2), and a
small OCaml workspace to talk about."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bactrian.aid.client import AidClient
from tests.models.modelcache import use_model_cache

use_model_cache()
SRC = Path(__file__).resolve().parents[2] / "src"

DIFF = (
    "```diff\n--- a/lib/shape.ml\n+++ b/lib/shape.ml\n@@ -1 +1,2 @@\n type t = Circle of float\n"
    '+let to_string (Circle r) = Printf.sprintf "circle %g" r\n```\n'
)
ANSWERS: list[dict[str, Any]] = [
    {"match": "to_string", "text": DIFF},
    {"match": "slowly", "token_delay_s": 0.05, "text": " ".join(["word"] * 200)},
    {"match": "boom", "error": "scripted failure"},
    {"text": "I have no idea."},
]


def make_workspace(root: Path) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "lib" / "shape.ml").write_text("type t = Circle of float\n")
    (root / "lib" / "shape.mli").write_text("type t = Circle of float\n")
    (root / "lib" / "other.ml").write_text("let x = 1\n")
    (root / "test" / "test_shape.ml").write_text("let () = ignore Shape.Circle\n")
    return root


class SidecarProc:
    """``bactrian aid serve`` as a subprocess; ``client()`` connects and initializes."""

    def __init__(
        self,
        base: Path,
        workspace: Path,
        *,
        aid: dict[str, Any] | None = None,
        answers: list[dict[str, Any]] | None = None,
        models: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        self.base = base
        self.workspace = workspace
        self.socket = base / "run" / "aid.sock"
        self.script = base / "answers.json"
        self.record = base / "prompts.jsonl"
        self.metrics = base / "metrics.sqlite"
        self.write_answers(answers or ANSWERS)
        table = {
            "model": "scripted",
            "metrics_db": str(self.metrics),
            "build_probe": "none",
            "recent_files": 0,
            **(aid or {}),
        }
        lines = [
            "[models.scripted]",
            'backend = "scripted"',
            f'path = "{self.script}"',
            models,
            "[aid]",
        ]
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for k, v in table.items():
            if isinstance(v, dict):
                lines.append(_toml_table(f"aid.{k}", v))
        self.config = base / "config.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "BACTRIAN_DATA_DIR": str(base / "data"),
            **(env or {}),
        }
        self.proc: subprocess.Popen[str] | None = None
        self.stderr_path = base / "serve.log"

    def write_answers(self, answers: list[dict[str, Any]]) -> None:
        self.script.write_text(
            json.dumps({"record": str(self.base / "prompts.jsonl"), "answers": answers})
        )

    def argv(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bactrian.cli",
            "aid",
            *extra,
            "--socket",
            str(self.socket),
            "--config",
            str(self.config),
        ]

    def start(self, *extra: str, wait: bool = True) -> SidecarProc:
        err = self.stderr_path.open("a")
        self.proc = subprocess.Popen(
            [*self.argv("serve"), "--no-warm", *extra],
            env=self.env,
            stdout=err,
            stderr=err,
            text=True,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"the sidecar exited ({self.proc.returncode}): {self.stderr_path.read_text()}"
                )
            if "aid: serving" in self.stderr_path.read_text():
                return
            time.sleep(0.05)
        raise AssertionError(f"the sidecar did not start: {self.stderr_path.read_text()}")

    def client(self, **kw: Any) -> AidClient:
        kw.setdefault("root", str(self.workspace))
        return AidClient(self.socket, **kw)

    def run_cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def server_pid(self) -> int:
        info = json.loads((self.socket.parent / ".aid.sock.d" / "server.json").read_text())
        return int(info["pid"])

    def stop(self) -> None:
        pids = {self.proc.pid} if self.proc is not None else set()
        with contextlib.suppress(OSError, ValueError):
            pids.add(self.server_pid())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        deadline = time.monotonic() + 10
        for pid in pids:
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _toml_table(name: str, table: dict[str, Any]) -> str:
    flat = [f"{k} = {json.dumps(v)}" for k, v in table.items() if not isinstance(v, dict)]
    out = [f"[{name}]", *flat]
    for k, v in table.items():
        if isinstance(v, dict):
            if all(not isinstance(x, dict) for x in v.values()) and k == "pins":
                out.append(
                    f"{k} = {{ {', '.join(f'{a} = {json.dumps(b)}' for a, b in v.items())} }}"
                )
            else:
                out.append(_toml_table(f"{name}.{k}", v))
    return "\n".join(out)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory (Unix socket paths are limited to 108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="aid-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def sidecar(short_tmp: Path, workspace: Path) -> Iterator[SidecarProc]:
    sc = SidecarProc(short_tmp, workspace).start()
    yield sc
    sc.stop()


@pytest.fixture(scope="module")
def shared_sidecar() -> Iterator[SidecarProc]:
    """One sidecar for a module's read-mostly tests."""
    base = Path(tempfile.mkdtemp(prefix="aid-", dir="/tmp"))
    sc = SidecarProc(base, make_workspace(base / "ws")).start()
    yield sc
    sc.stop()
    shutil.rmtree(base, ignore_errors=True)
