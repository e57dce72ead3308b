"""One way to run a child command: the build probe and the CES sandbox both run through
:func:`run`.

- The command runs in its own session (so its own process group), stdin from ``/dev/null``,
  stdout and stderr merged into one pipe.
- Optional low priority (``nice -n 19`` and ``ionice -c3`` where available and permitted) and
  resource limits (``setrlimit`` in the child before ``exec``).
- Output is read on the calling thread with ``select``; at most ``keep_bytes`` are held (its
  head and its tail, the middle counted and dropped). Past ``hard_output_bytes`` the command is
  killed (an output flood).
- One kill policy, :func:`kill_group`: SIGTERM to the group, ``grace_s`` to exit, then SIGKILL
  to whatever is left of the group. It is used on timeout, on an output flood, when the
  ``watchdog`` callback names a reason, and on any exception while waiting.
- When the command exits while something it started still holds the pipe, that straggler is
  given ``linger_s`` to finish, then its group is killed and the result says ``lingering``.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

KILL_GRACE_S = 2.0


@dataclass(frozen=True)
class ResourceLimits:
    """``setrlimit`` values for the child (None = inherit). Sizes in bytes."""

    cpu_s: int | None = None
    address_space: int | None = None
    processes: int | None = None
    file_size: int | None = None
    core: int | None = 0

    def apply(self) -> None:
        """Set the limits in the current process (runs in the child before ``exec``)."""
        for res, value in (
            (resource.RLIMIT_CPU, self.cpu_s),
            (resource.RLIMIT_AS, self.address_space),
            (resource.RLIMIT_NPROC, self.processes),
            (resource.RLIMIT_FSIZE, self.file_size),
            (resource.RLIMIT_CORE, self.core),
        ):
            if value is not None:
                resource.setrlimit(res, (value, value))


@dataclass
class ProcResult:
    """What :func:`run` saw. ``returncode`` is the child's status (negative: the signal that
    ended it), None only if it never exited after the last kill."""

    returncode: int | None
    head: bytes
    tail: bytes
    total_bytes: int
    duration_s: float
    timed_out: bool = False
    killed: str | None = None  # why we killed it: "timeout", "output", or a watchdog reason
    lingering: bool = False  # something the command started kept the output open after it
    notes: list[str] = field(default_factory=list)

    @property
    def dropped_bytes(self) -> int:
        return self.total_bytes - len(self.head) - len(self.tail)

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0

    def text(self, dropped: str = "\n[… bactrian: {n} bytes of output dropped …]\n") -> str:
        """Head, a note of the dropped middle (``dropped`` formatted with ``n``), tail."""
        mid = dropped.format(n=self.dropped_bytes) if self.truncated else ""
        return self.head.decode("utf-8", "replace") + mid + self.tail.decode("utf-8", "replace")


class HeadTail:
    """Keeps the first and the last ``keep // 2`` bytes of a stream, counting the rest."""

    def __init__(self, keep: int) -> None:
        self.half = max(keep // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]


def bound_log(text: str, max_bytes: int) -> str:
    """``text`` cut to about ``max_bytes`` (UTF-8), keeping its head and tail."""
    data = text.encode("utf-8", "replace")
    if max_bytes <= 0 or len(data) <= max_bytes:
        return text
    half = max_bytes // 2
    head = data[:half].decode("utf-8", "ignore")
    tail = data[-half:].decode("utf-8", "ignore")
    return f"{head}\n[… bactrian: {len(data) - 2 * half} bytes of build log elided …]\n{tail}"


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


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM the process group, give it ``grace_s``, then SIGKILL what is left of it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    # the leader may be gone while members of its group linger: kill those too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str] | None = None,
    timeout_s: float,
    keep_bytes: int,
    hard_output_bytes: int | None = None,
    low_priority: bool = False,
    limits: ResourceLimits | None = None,
    watchdog: Callable[[], str | None] | None = None,
    watch_every_s: float = 0.2,
    grace_s: float = KILL_GRACE_S,
    linger_s: float = 1.0,
) -> ProcResult:
    """Run ``argv`` (see the module docstring). Raises ``OSError`` (``FileNotFoundError``
    included) when the command cannot be started at all."""
    start = time.monotonic()
    full = (priority_prefix() if low_priority else []) + list(argv)
    proc = subprocess.Popen(
        full,
        cwd=str(cwd),
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=limits.apply if limits is not None else None,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out = HeadTail(keep_bytes)
    killed: str | None = None
    lingering = eof = False
    deadline = start + timeout_s
    next_watch = start + watch_every_s
    exited_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                killed = "timeout"
                break
            if watchdog is not None and now >= next_watch:
                next_watch = now + watch_every_s
                reason = watchdog()
                if reason:
                    killed = reason
                    break
            if proc.poll() is not None:
                if eof:
                    break
                if exited_at is None:
                    exited_at = now
                elif now - exited_at >= linger_s:
                    lingering = True  # the command is gone, a straggler still holds the pipe
                    break
            wait = max(min(deadline - now, watch_every_s), 0.0)
            if eof:  # the output is closed; wait for the command itself
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=wait)
                continue
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                eof = True
                continue
            out.add(chunk)
            if hard_output_bytes is not None and out.total > hard_output_bytes:
                killed = "output"
                break
    except BaseException:
        kill_group(proc, grace_s)
        proc.stdout.close()
        raise
    if killed or lingering or proc.poll() is None:
        kill_group(proc, grace_s)
    else:
        # the leader exited and the pipe is closed; stragglers of its group go too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.stdout.close()
    try:
        code: int | None = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        code = None
    return ProcResult(
        returncode=code,
        head=bytes(out.head),
        tail=bytes(out.tail),
        total_bytes=out.total,
        duration_s=time.monotonic() - start,
        timed_out=killed == "timeout",
        killed=killed,
        lingering=lingering,
    )
