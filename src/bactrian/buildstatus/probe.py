"""Build probes: one :class:`BuildProbe` protocol, named implementations in :data:`PROBES`.

A probe answers "does this workspace build?" with a :class:`bactrian.types.BuildResult`
(green / red / unknown, duration, parsed diagnostics, a bounded log). Implementations:

* ``command`` — runs a shell command (cwd = the workspace) at low CPU/IO priority, with a
  timeout that kills its whole process group, one at a time per workspace (an ``flock`` on a
  file under ``data_dir()/locks``, never inside the workspace), and only when the tree changed
  (a result is cached per ``tree_id``).
* ``dune`` — the command probe with dune's defaults (``dune build @check --root .
  --display quiet``); the targets are configurable (``@check @runtest`` makes failing tests red).
* ``dune-watch`` — reads the status a ``bactrian build watch -- dune build -w`` wrapper keeps;
  runs no build (see :mod:`bactrian.buildstatus.watch`).
* ``none`` — always ``unknown`` (nothing recognised in the workspace).

:func:`choose_probe` picks one from the workspace and :class:`BuildConfig`.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import errno
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from bactrian.buildstatus.diagnostics import parse_diagnostics
from bactrian.config import data_dir, load_section
from bactrian.dune import is_dune_project
from bactrian.errors import BuildProbeError, ConfigError
from bactrian.registry import Registry
from bactrian.types import BuildResult, BuildState, Diagnostic

MAX_OUTPUT_BYTES = 32_000_000
OUTPUT_GRACE_S = 1.0

# Things to tell the user when a build tool is missing, by the command's first word.
INSTALL_HINTS: dict[str, str] = {
    "dune": "install dune (Debian/Ubuntu: `apt-get install ocaml-dune`; opam: `opam install dune`)",
    "make": "install make (Debian/Ubuntu: `apt-get install make`)",
    "ocamlfind": "install ocamlfind (`apt-get install ocaml-findlib` or `opam install ocamlfind`)",
}


@dataclass
class BuildConfig:
    """``[build]`` settings (env ``BACTRIAN_BUILD_<FIELD>``)."""

    probe: str = "auto"  # auto | command | dune | dune-watch | none
    build_cmd: str | None = None  # shell command for the command probe (implies probe=command)
    dune_targets: str = "@check"  # e.g. "@check @runtest" to make failing tests red
    dune_args: str = "--root . --display quiet"
    dune_cache: str = "disabled"  # DUNE_CACHE for probe builds; "" = inherit the user's setting
    language: str = "ocaml"  # diagnostics parser (bactrian.buildstatus.diagnostics.PARSERS)
    timeout_s: float = 300.0
    low_priority: bool = True  # nice -n 19 and ionice -c3 where available
    max_log_bytes: int = 200_000
    lock_wait_s: float | None = None  # how long to wait for another build of the workspace
    # (None = as long as timeout_s)
    watch_wait_s: float = 10.0  # dune-watch: how long to wait for a running build to finish
    watch_stale_s: float = 3.0  # dune-watch: grace for a newer edit to start a rebuild

    @classmethod
    def load(cls, **overrides: object) -> BuildConfig:
        return load_section(cls, "build", overrides=dict(overrides))


@runtime_checkable
class BuildProbe(Protocol):
    """Tells the build state of a workspace. ``tree_id`` (the snapshot's content id) lets a
    probe return a cached answer when the tree did not change."""

    name: str

    def run(self, workspace: Path, tree_id: str | None = None) -> BuildResult: ...


ProbeFactory = Callable[[BuildConfig], BuildProbe]
PROBES: Registry[ProbeFactory] = Registry("build probe")


# ---------------------------------------------------------------- helpers


def workspace_key(workspace: Path) -> str:
    """A stable short id of a workspace path (for lock and status file names)."""
    return hashlib.sha256(str(Path(workspace).resolve()).encode()).hexdigest()[:16]


def bound_log(text: str, max_bytes: int) -> str:
    """``text`` cut to about ``max_bytes`` (UTF-8), keeping its head and tail."""
    data = text.encode("utf-8", "replace")
    if max_bytes <= 0 or len(data) <= max_bytes:
        return text
    half = max_bytes // 2
    head = data[:half].decode("utf-8", "ignore")
    tail = data[-half:].decode("utf-8", "ignore")
    return f"{head}\n[… bactrian: {len(data) - 2 * half} bytes of build log elided …]\n{tail}"


@contextlib.contextmanager
def workspace_lock(workspace: Path, wait_s: float) -> Iterator[bool]:
    """An exclusive ``flock`` for builds of ``workspace``, kept under ``data_dir()/locks``.

    Yields True when held; False when another process still held it after ``wait_s``.
    """
    lock_dir = data_dir() / "locks"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_dir / f"build-{workspace_key(workspace)}.lock", os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise BuildProbeError(
            f"Cannot create the build lock under {lock_dir}: {exc}. Check that the bactrian data "
            "directory (BACTRIAN_DATA_DIR) is writable."
        ) from exc
    try:
        deadline = time.monotonic() + max(wait_s, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_PRIORITY_PREFIX: list[str] | None = None


def priority_prefix() -> list[str]:
    """``nice -n 19 ionice -c3`` (each where available and permitted)."""
    global _PRIORITY_PREFIX
    if _PRIORITY_PREFIX is None:
        prefix: list[str] = []
        nice = shutil.which("nice")
        if nice:
            prefix += [nice, "-n", "19"]
        ionice = shutil.which("ionice")
        if ionice:
            try:
                ok = subprocess.run([ionice, "-c3", "true"], capture_output=True, timeout=5)
                if ok.returncode == 0:
                    prefix += [ionice, "-c3"]
            except (OSError, subprocess.SubprocessError):
                pass
        _PRIORITY_PREFIX = prefix
    return list(_PRIORITY_PREFIX)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; members of its group may linger: kill those too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


class _OutputReader:
    """Reads a process's output on a thread, keeping at most ``cap`` bytes (head and tail)."""

    def __init__(self, proc: subprocess.Popen[bytes], cap: int) -> None:
        self._stream = proc.stdout
        self._half = max(cap // 2, 1)
        self._head = bytearray()
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_len = 0
        self._dropped = 0
        self._notes: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="build-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._stream is not None
        fd = self._stream.fileno()
        try:
            while chunk := os.read(fd, 65536):
                with self._lock:
                    self._add(chunk)
        except (OSError, ValueError):
            pass

    def _add(self, chunk: bytes) -> None:
        room = self._half - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self._tail.append(chunk)
        self._tail_len += len(chunk)
        while self._tail_len - len(self._tail[0]) >= self._half:
            old = self._tail.popleft()
            self._tail_len -= len(old)
            self._dropped += len(old)

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def note(self, line: str) -> None:
        self._notes.append(line)

    def data(self) -> str:
        with self._lock:
            head = bytes(self._head).decode("utf-8", "replace")
            tail = b"".join(self._tail).decode("utf-8", "replace")
            dropped = self._dropped
        mid = f"\n[… bactrian: {dropped} bytes of build output dropped …]\n" if dropped else ""
        notes = "".join(f"\n{n}" for n in self._notes)
        return head + mid + tail + notes


# ---------------------------------------------------------------- command probe


@dataclass
class CommandProbe:
    """Runs a build command in the workspace; see the module docstring."""

    command: str | Sequence[str]
    name: str = "command"
    language: str = "ocaml"
    timeout_s: float = 300.0
    low_priority: bool = True
    max_log_bytes: int = 200_000
    lock_wait_s: float | None = None
    max_output_bytes: int = MAX_OUTPUT_BYTES  # held in memory and parsed (head + tail)
    env: Mapping[str, str] = field(default_factory=dict)  # added to os.environ
    _cache: dict[str, tuple[str, BuildResult]] = field(default_factory=dict, repr=False)

    @property
    def command_text(self) -> str:
        if isinstance(self.command, str):
            return self.command
        return shlex.join(self.command)

    def _argv(self) -> list[str]:
        base = (
            ["/bin/sh", "-c", self.command] if isinstance(self.command, str) else list(self.command)
        )
        return (priority_prefix() if self.low_priority else []) + base

    def _tool(self, output: str = "") -> str:
        # the shell names what it could not find: "sh: 1: foo: not found"
        m = re.search(
            r"(?m)^(?:/bin/)?(?:ba|da)?sh: (?:\d+: |line \d+: )?(\S+): (?:command )?not found",
            output,
        )
        if m:
            return m[1]
        try:
            words = shlex.split(self.command_text)
        except ValueError:
            words = self.command_text.split()
        for w in words:
            if "=" not in w.split("/")[0]:  # skip VAR=value prefixes
                return w
        return ""

    def _result(
        self,
        state: BuildState,
        t0: float,
        log: str,
        code: int | None,
        diags: Sequence[Diagnostic] = (),
    ) -> BuildResult:
        return BuildResult(
            state=state,
            duration_s=round(time.monotonic() - t0, 3),
            diagnostics=list(diags),
            log=bound_log(log, self.max_log_bytes),
            command=self.command_text,
            exit_code=code,
            probe=self.name,
        )

    def _cached(self, workspace: Path, tree_id: str | None) -> BuildResult | None:
        hit = self._cache.get(str(Path(workspace).resolve()))
        if tree_id is not None and hit is not None and hit[0] == tree_id:
            return copy.deepcopy(hit[1])
        return None

    def run(self, workspace: Path, tree_id: str | None = None) -> BuildResult:
        workspace = Path(workspace)
        key = str(workspace.resolve())
        cached = self._cached(workspace, tree_id)
        if cached is not None:
            return cached
        result = self._run_uncached(workspace)
        if tree_id is not None and result.state is not BuildState.UNKNOWN:
            self._cache[key] = (tree_id, copy.deepcopy(result))
        return result

    def _run_uncached(self, workspace: Path) -> BuildResult:
        t0 = time.monotonic()
        if not workspace.is_dir():
            return self._result(
                BuildState.UNKNOWN, t0, f"bactrian: workspace {workspace} is not a directory.", None
            )
        wait = self.timeout_s if self.lock_wait_s is None else self.lock_wait_s
        with workspace_lock(workspace, wait) as held:
            if not held:
                return self._result(
                    BuildState.UNKNOWN,
                    t0,
                    f"bactrian: another build of {workspace} was still running after {wait:.0f} s "
                    "(lock under the bactrian data dir); no build was run.",
                    None,
                )
            return self._build(workspace, t0)

    def _build(self, workspace: Path, t0: float) -> BuildResult:
        env = dict(os.environ)
        env.pop("INSIDE_DUNE", None)
        env.update(self.env)
        try:
            proc = subprocess.Popen(
                self._argv(),
                cwd=workspace,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            return self._missing(t0, "", None)
        except OSError as exc:
            return self._result(
                BuildState.UNKNOWN, t0, f"bactrian: cannot start the build: {exc}", None
            )
        reader = _OutputReader(proc, self.max_output_bytes)
        try:
            proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            reader.join(OUTPUT_GRACE_S)
            msg = (
                f"\nbactrian: build timed out after {self.timeout_s:g} s; its process group was "
                "killed. Raise [build] timeout_s if the build is just slow."
            )
            return self._result(BuildState.UNKNOWN, t0, reader.data() + msg, None)
        except BaseException:
            _kill_group(proc)
            raise
        if not reader.join(OUTPUT_GRACE_S):
            # The build exited but something it started still holds its output open: stop any
            # stragglers still in its process group and go on with what we have.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if not reader.join(0.5):
                reader.note(
                    "bactrian: a process the build started kept its output open after the build "
                    "exited; stopped reading it."
                )
        out = reader.data()
        text = out
        code = proc.returncode
        if code in (126, 127):
            return self._missing(t0, text, code)
        if code < 0:
            msg = f"\nbactrian: the build was killed by signal {-code}; state unknown."
            return self._result(BuildState.UNKNOWN, t0, text + msg, code)
        diags = parse_diagnostics(text, self.language)
        state = BuildState.GREEN if code == 0 else BuildState.RED
        return self._result(state, t0, text, code, diags)

    def _missing(self, t0: float, text: str, code: int | None) -> BuildResult:
        tool = self._tool(text)
        hint = INSTALL_HINTS.get(Path(tool).name, f"install `{tool}` or fix [build] build_cmd")
        msg = (
            f"bactrian: the build command could not run its tool `{tool}` "
            f"(exit {code if code is not None else 'not started'}); {hint}."
        )
        return self._result(BuildState.UNKNOWN, t0, f"{text}\n{msg}".lstrip("\n"), code)


def dune_command(config: BuildConfig) -> list[str]:
    """The argv of the dune probe: ``dune build <targets> <args>``."""
    return ["dune", "build", *shlex.split(config.dune_targets), *shlex.split(config.dune_args)]


@dataclass
class DuneProbe(CommandProbe):
    """The command probe with dune's defaults; answers UNKNOWN when dune is not installed.

    With ``defer_to_watch`` (what ``probe = "auto"`` gives) it asks a live ``bactrian build
    watch`` of the workspace instead of building, checked on every run: a second dune building
    into the same ``_build`` as the developer's ``dune build -w`` would fight it (dune 2.9 has no
    build-directory lock).
    """

    name: str = "dune"
    defer_to_watch: bool = False
    watch_wait_s: float = 10.0
    watch_stale_s: float = 3.0

    def run(self, workspace: Path, tree_id: str | None = None) -> BuildResult:
        from bactrian.buildstatus.watch import WatchProbe, foreign_dune_watch, watcher_alive

        if self.defer_to_watch and watcher_alive(workspace):
            return WatchProbe(self.watch_wait_s, self.watch_stale_s).run(workspace, tree_id)
        cached = self._cached(workspace, tree_id)
        if cached is not None:
            return cached
        pid = foreign_dune_watch(workspace)
        if pid is not None:
            return self._result(
                BuildState.UNKNOWN,
                time.monotonic(),
                f"bactrian: `dune build -w` (pid {pid}) is already building {workspace}; a second "
                "dune would fight it over _build, so none was run. Start the watch as "
                "`bactrian build watch -- dune build -w @check` and bactrian will read its "
                "status instead.",
                None,
            )
        if shutil.which("dune", path=dict(os.environ, **self.env).get("PATH")) is None:
            t0 = time.monotonic()
            return self._missing(t0, "", None)
        return super().run(workspace, tree_id)


@dataclass
class NoneProbe:
    """No build known for this workspace: always UNKNOWN."""

    reason: str = (
        "no build probe for this workspace: no dune-project at its root and no build command; "
        "pass --build-cmd or set [build] build_cmd / probe in the config."
    )
    name: str = "none"

    def run(self, workspace: Path, tree_id: str | None = None) -> BuildResult:
        return BuildResult(
            BuildState.UNKNOWN, 0.0, [], f"bactrian: {self.reason}", "", None, "none"
        )


def _command_probe(config: BuildConfig) -> BuildProbe:
    if not config.build_cmd:
        raise ConfigError(
            "The command build probe needs a command: pass --build-cmd 'dune build 2>&1' or set "
            "[build] build_cmd in the config."
        )
    return CommandProbe(
        command=config.build_cmd,
        language=config.language,
        timeout_s=config.timeout_s,
        low_priority=config.low_priority,
        max_log_bytes=config.max_log_bytes,
        lock_wait_s=config.lock_wait_s,
    )


def _dune_probe(config: BuildConfig, *, defer_to_watch: bool = False) -> BuildProbe:
    env = {"DUNE_CACHE": config.dune_cache} if config.dune_cache else {}
    env["OCAML_COLOR"] = "never"
    return DuneProbe(
        command=dune_command(config),
        language="ocaml",
        timeout_s=config.timeout_s,
        low_priority=config.low_priority,
        max_log_bytes=config.max_log_bytes,
        lock_wait_s=config.lock_wait_s,
        env=env,
        defer_to_watch=defer_to_watch,
        watch_wait_s=config.watch_wait_s,
        watch_stale_s=config.watch_stale_s,
    )


def _watch_probe(config: BuildConfig) -> BuildProbe:
    from bactrian.buildstatus.watch import WatchProbe

    return WatchProbe(wait_s=config.watch_wait_s, stale_s=config.watch_stale_s)


PROBES.add("command", _command_probe)
PROBES.add("dune", _dune_probe)
PROBES.add("dune-watch", _watch_probe)
PROBES.add("none", lambda config: NoneProbe())


def choose_probe(
    workspace: Path,
    *,
    probe: str = "auto",
    build_cmd: str | None = None,
    timeout_s: float = 300.0,
    config: BuildConfig | None = None,
) -> BuildProbe:
    """The probe for ``workspace``.

    ``probe="auto"``: a ``build_cmd`` → ``command``; else a ``dune-project`` at the root →
    ``dune``, which reads a live ``bactrian build watch`` of the workspace instead of building
    (checked on each run); else ``none``. An explicit name is looked up in :data:`PROBES` (unknown names raise
    :class:`bactrian.errors.UnknownNameError`). ``config`` (default: the ``[build]`` section)
    supplies the other settings; the keyword arguments override it.
    """
    cfg = config or BuildConfig.load()
    cfg = dataclasses.replace(cfg, build_cmd=build_cmd or cfg.build_cmd)
    if timeout_s != 300.0:
        cfg = dataclasses.replace(cfg, timeout_s=timeout_s)
    name = probe if probe != "auto" else cfg.probe
    if name == "auto":
        workspace = Path(workspace)
        if cfg.build_cmd:
            name = "command"
        elif is_dune_project(workspace):
            return _dune_probe(cfg, defer_to_watch=True)
        else:
            name = "none"
    return PROBES.get(name)(cfg)
