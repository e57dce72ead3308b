"""Build status from a build the developer already runs in watch mode (``dune build -w``).

What dune 2.9 gives us (checked on dune 2.9.3): with its output piped it prints only
``********** NEW BUILD **********`` at the start of each rebuild and then the errors — nothing
when a build ends; ``_build/log`` lists each command and its output but has no end-of-build
marker either. So neither tells "finished green" from "still building". On a terminal, however,
dune ends every build with a status line: ``Success, waiting for filesystem changes...`` or
``Had errors, waiting for filesystem changes...``.

So the developer starts the watch through a thin wrapper::

    bactrian build watch ~/src/proj -- dune build -w @check

which runs dune on a pseudo-terminal (dune shows its usual progress and colours, and the
wrapper copies everything to the real terminal), follows those markers, and keeps a small JSON
status file *outside* the workspace, ``data_dir()/watch/<workspace key>.json``. The wrapper holds
an ``flock`` on ``data_dir()/locks/watch-<key>.lock`` for as long as it runs, which is how
readers know a watcher is alive (a crashed wrapper releases it, so no stale pid files).

:class:`WatchProbe` (``dune-watch``) reads that status and answers without building:

* no live wrapper → ``unknown`` (and what to run);
* a build in progress → waits up to ``wait_s`` for it to end, else ``unknown``;
* a file in the workspace newer than the start of the last build (dune has not picked the
  edit up yet) → waits up to ``stale_s`` for the rebuild, else ``unknown``;
* otherwise ``green``/``red`` with the diagnostics of the last build.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from bactrian.buildstatus.diagnostics import parse_ocaml
from bactrian.buildstatus.workspace import workspace_key
from bactrian.config import data_dir
from bactrian.errors import BuildProbeError
from bactrian.proc import bound_log
from bactrian.types import BuildResult, BuildState, Diagnostic

DEFAULT_WATCH_COMMAND = ("dune", "build", "-w", "@check", "--root", ".")
MAX_OUTPUT_BYTES = 200_000

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>c]")
_CLEAR = re.compile(r"\x1b\[[23]J|\x1bc")  # a screen clear also starts a new build (dune 3)
_BANNER = re.compile(r"^\*+ NEW BUILD \*+$")
_SUCCESS = re.compile(r"^Success, waiting for filesystem changes")
_FAILED = re.compile(r"^Had errors, waiting for filesystem changes")
_PROGRESS = re.compile(r"^(?:Done: \d+/\d+|Scanned \d+ directories|Waiting for filesystem)")


def status_path(workspace: Path) -> Path:
    return data_dir() / "watch" / f"{workspace_key(workspace)}.json"


def _lock_path(workspace: Path) -> Path:
    return data_dir() / "locks" / f"watch-{workspace_key(workspace)}.lock"


@dataclass
class WatchStatus:
    """What the wrapper knows about the watch build, as stored in the status file."""

    workspace: str
    command: list[str]
    wrapper_pid: int
    child_pid: int | None = None
    state: str = "starting"  # starting | building | green | red | exited
    build_no: int = 0
    build_started_at: float = 0.0
    build_finished_at: float | None = None
    updated_at: float = 0.0
    exit_code: int | None = None
    output: str = ""  # what dune printed during the last finished build (bounded)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WatchStatus:
        data = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def read_status(workspace: Path) -> WatchStatus | None:
    """The status file of ``workspace``'s watcher, or None when there is none / it is unreadable."""
    try:
        return WatchStatus.from_json(status_path(workspace).read_text())
    except (OSError, ValueError, TypeError):
        return None


def _write_status(path: Path, status: WatchStatus) -> None:
    status.updated_at = time.time()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(status.to_json())
    os.replace(tmp, path)


def watcher_alive(workspace: Path) -> bool:
    """True when a ``bactrian build watch`` wrapper holds the watch lock of ``workspace``."""
    path = _lock_path(workspace)
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class WatchTracker:
    """Follows a watch-mode dune's terminal output and keeps a :class:`WatchStatus` up to date.

    ``feed`` takes raw output chunks; it returns True when the state changed (time to save).
    """

    def __init__(self, status: WatchStatus) -> None:
        self.status = status
        self._partial = ""
        self._buffer: list[str] = []
        self._activity = False
        self._start_build()

    def _start_build(self) -> None:
        s = self.status
        s.build_no += 1
        s.state = "building"
        s.build_started_at = time.time()
        self._buffer = []
        self._activity = False

    def _finish(self, state: str) -> None:
        s = self.status
        text = "\n".join(self._buffer).strip("\n")
        s.state = state
        s.build_finished_at = time.time()
        s.output = bound_log(text, MAX_OUTPUT_BYTES)
        s.diagnostics = [d.to_dict() for d in parse_ocaml(text)]

    def feed(self, chunk: str) -> bool:
        changed = False
        if _CLEAR.search(chunk):
            # Only what follows the last clear belongs to the new build.
            chunk = _CLEAR.split(chunk)[-1]
            self._partial = ""
            self._start_build()
            changed = True
        pieces = re.split(r"\r\n|\r|\n", self._partial + chunk)
        self._partial = pieces.pop()
        for raw in pieces:
            changed |= self._line(raw)
        # A status line is written without a newline (it is redrawn in place): handle it now.
        tail = _ANSI.sub("", self._partial).strip()
        if _SUCCESS.match(tail) or _FAILED.match(tail):
            changed |= self._line(self._partial)
            self._partial = ""
        return changed

    def _line(self, raw: str) -> bool:
        raw = _ANSI.sub("", raw)
        line = raw.strip()
        if not line:
            if self._buffer and self.status.state == "building":
                self._buffer.append("")
            return False
        if _BANNER.match(line):
            self._start_build()
            return True
        ok, failed = _SUCCESS.match(line), _FAILED.match(line)
        if ok or failed:
            # Right after a banner dune redraws the previous build's status line: not ours.
            if self.status.state == "building" and self._activity:
                self._finish("green" if ok else "red")
                return True
            return False
        self._activity = True
        if not _PROGRESS.match(line) and self.status.state == "building":
            self._buffer.append(raw.rstrip())
        return False


@contextlib.contextmanager
def _watch_lock(workspace: Path) -> Iterator[None]:
    path = _lock_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise BuildProbeError(
                f"A `bactrian build watch` for {workspace} is already running; stop it first "
                "(one watch build per workspace)."
            ) from exc
        yield
    finally:
        os.close(fd)


def _check_display(command: Sequence[str]) -> None:
    """dune prints its end-of-build status line only with ``--display progress`` (the default
    on a terminal); with ``short``/``quiet``/``verbose`` the wrapper could never tell a build
    ended."""
    args = list(command)
    for k, a in enumerate(args):
        value = None
        if a == "--display" and k + 1 < len(args):
            value = args[k + 1]
        elif a.startswith("--display="):
            value = a.split("=", 1)[1]
        if value is not None and value != "progress":
            raise BuildProbeError(
                f"`--display {value}` hides the `Success/Had errors, waiting for filesystem "
                "changes` line that tells bactrian a watch build ended; drop the --display "
                "option (or use --display progress)."
            )


def _set_winsize(fd: int, out: IO[bytes]) -> None:
    rows, cols = 50, 200
    with contextlib.suppress(OSError, ValueError, AttributeError):
        packed = fcntl.ioctl(out.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        r, c = struct.unpack("HHHH", packed)[:2]
        rows, cols = r or rows, c or cols
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def run_watch(
    workspace: Path,
    command: Sequence[str] = DEFAULT_WATCH_COMMAND,
    *,
    out: IO[bytes] | None = None,
    on_status: Callable[[WatchStatus], None] | None = None,
) -> int:
    """Run ``command`` (a watch-mode build) in ``workspace`` on a pseudo-terminal until it
    exits or this process gets SIGINT/SIGTERM; copy its output to ``out`` (default: stdout)
    and keep the status file up to date. Returns the build tool's exit status.
    """
    workspace = Path(workspace).resolve()
    if not workspace.is_dir():
        raise BuildProbeError(f"Workspace {workspace} is not a directory.")
    if not command:
        raise BuildProbeError("No watch command given, e.g. `-- dune build -w @check`.")
    _check_display(command)
    out = out if out is not None else sys.stdout.buffer
    path = status_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _watch_lock(workspace):
        status = WatchStatus(str(workspace), list(command), os.getpid())
        tracker = WatchTracker(status)
        pid, fd = pty.fork()
        if pid == 0:  # child: the build tool in its own session, on the pty
            try:
                os.chdir(workspace)
                os.environ.pop("INSIDE_DUNE", None)
                os.execvp(command[0], list(command))
            except OSError as exc:
                os.write(2, f"bactrian: cannot run {command[0]}: {exc}\n".encode())
            os._exit(127)
        status.child_pid = pid
        _set_winsize(fd, out)
        _write_status(path, status)
        if on_status:
            on_status(status)
        stop = {"sig": 0}

        def _on_signal(signum: int, frame: object) -> None:
            stop["sig"] = signum

        old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        old[signal.SIGWINCH] = signal.signal(  # pass terminal resizes on to dune
            signal.SIGWINCH, lambda signum, frame: _set_winsize(fd, out)
        )
        try:
            code = _pump(fd, pid, tracker, path, out, stop, on_status)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            os.close(fd)
        status.state = "exited"
        status.exit_code = code
        _write_status(path, status)
        if on_status:
            on_status(status)
        return code


def _pump(
    fd: int,
    pid: int,
    tracker: WatchTracker,
    path: Path,
    out: IO[bytes],
    stop: dict[str, int],
    on_status: Callable[[WatchStatus], None] | None,
) -> int:
    killed_at: float | None = None
    while True:
        if stop["sig"] and killed_at is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            killed_at = time.monotonic()
        if killed_at is not None and time.monotonic() - killed_at > 5:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        try:
            ready, _, _ = select.select([fd], [], [], 0.2)
        except InterruptedError:
            continue
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the pty
                data = b""
            if not data:
                break
            with contextlib.suppress(OSError, ValueError):
                out.write(data)
                out.flush()
            if tracker.feed(data.decode("utf-8", "replace")):
                _write_status(path, tracker.status)
                if on_status:
                    on_status(tracker.status)
        else:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return _exit_code(_)
    _, wstatus = os.waitpid(pid, 0)
    return _exit_code(wstatus)


def _exit_code(wstatus: int) -> int:
    if os.WIFSIGNALED(wstatus):
        return 128 + os.WTERMSIG(wstatus)
    return os.WEXITSTATUS(wstatus)


# ---------------------------------------------------------------- dune -w outside bactrian

_WATCH_FLAGS = {"-w", "--watch", "--passive-watch-mode"}


def foreign_dune_watch(workspace: Path, proc_root: Path = Path("/proc")) -> int | None:
    """The pid of a ``dune … -w`` whose root is ``workspace`` (dune chdirs to its root), or
    None. Linux only (reads ``/proc``); elsewhere always None. Processes of other users are
    skipped when their cwd cannot be read."""
    try:
        target = Path(workspace).resolve()
        pids = [e.name for e in os.scandir(proc_root) if e.name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            argv = (proc_root / pid / "cmdline").read_bytes().split(b"\0")
            if not argv or os.path.basename(argv[0]) != b"dune":
                continue
            args = {a.decode("utf-8", "replace") for a in argv[1:]}
            if not (args & _WATCH_FLAGS) or "build" not in args:
                continue
            if Path(os.readlink(proc_root / pid / "cwd")).resolve() == target:
                return int(pid)
        except (OSError, ValueError):
            continue
    return None


# ---------------------------------------------------------------- the probe


def newest_mtime(workspace: Path, since: float) -> float | None:
    """The mtime of some file in ``workspace`` newer than ``since`` (skipping ``_build`` and
    dot-directories), or None. Stops at the first one found."""
    stack = [Path(workspace)]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith(".") or e.name == "_build" or e.name.startswith("#"):
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                    continue
                m = e.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if m > since:
                return m
    return None


@dataclass
class WatchProbe:
    """Reads the status kept by ``bactrian build watch``; never runs a build."""

    wait_s: float = 10.0
    stale_s: float = 3.0
    name: str = "dune-watch"

    def _unknown(self, msg: str, status: WatchStatus | None = None) -> BuildResult:
        return BuildResult(
            BuildState.UNKNOWN,
            0.0,
            [],
            f"bactrian: {msg}",
            " ".join(status.command) if status else "",
            None,
            self.name,
        )

    def run(self, workspace: Path, tree_id: str | None = None) -> BuildResult:
        workspace = Path(workspace)
        deadline = time.monotonic() + max(self.wait_s, self.stale_s)
        stale_deadline = time.monotonic() + self.stale_s
        while True:
            alive = watcher_alive(workspace)
            status = read_status(workspace)
            if not alive or status is None or status.state == "exited":
                return self._unknown(
                    f"no watch-mode build is running for {workspace}. Start one with "
                    f"`bactrian build watch {workspace} -- dune build -w @check`, or use the "
                    "`dune` probe.",
                    status,
                )
            now = time.monotonic()
            if status.state in ("starting", "building"):
                if now >= deadline:
                    return self._unknown(
                        f"the watch-mode build #{status.build_no} is still running.", status
                    )
            elif newest_mtime(workspace, status.build_started_at) is not None:
                if now >= stale_deadline:
                    return self._unknown(
                        "the workspace changed after the last watch-mode build started and no "
                        "new build has begun (is the watcher stuck?).",
                        status,
                    )
            else:
                return self._result(status)
            time.sleep(0.05)

    def _result(self, status: WatchStatus) -> BuildResult:
        finished = status.build_finished_at or status.build_started_at
        return BuildResult(
            state=BuildState.GREEN if status.state == "green" else BuildState.RED,
            duration_s=round(max(finished - status.build_started_at, 0.0), 3),
            diagnostics=[Diagnostic.from_dict(d) for d in status.diagnostics],
            log=status.output,
            command=" ".join(status.command),
            exit_code=None,
            probe=self.name,
        )
