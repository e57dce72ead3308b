"""Per-job isolation: a throw-away overlay over the warm tree and a memory cgroup per job.

- :func:`run_in_private_mount_ns` runs a function in a new thread that first enters a mount
  namespace of its own (``unshare(CLONE_FS | CLONE_NEWNS)`` on that thread only, propagation
  made private). Every mount made there — and every process the thread starts — sees it; the
  host and the other threads never do. When the thread and its children end the namespace is
  gone, and with it every mount: a job cannot leave a mount behind, even if the CES is killed.
- :class:`JobLayer` mounts, inside that namespace, a size-limited tmpfs (the job's disk: its cap
  is the tmpfs's size) and a kernel overlayfs whose lower layer is the worker's warm tree
  (sources *and* ``_build``) and whose upper layer lives on that tmpfs. The job sees and writes
  the merged tree; the warm tree is never written; unmounting drops everything the job wrote.
- :class:`MemoryCgroup` is one memory cgroup per job (cgroup v1 ``memory.limit_in_bytes`` +
  ``memory.memsw.limit_in_bytes``, or v2 ``memory.max`` + ``memory.swap.max``) under the CES's
  own group: the total memory of every process of the job, plus the tmpfs pages it wrote.

All of it needs root (``CAP_SYS_ADMIN``); :func:`overlay_unavailable` says why not.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bactrian.errors import SandboxError

CLONE_FS = 0x00000200
CLONE_NEWNS = 0x00020000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]


class InfrastructureError(SandboxError):
    """The machine, not the diff: the job's sandbox or layer could not be set up, the host ran
    out of memory or disk, a worker crashed. Judged as an ``error`` verdict (no reward)."""


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def overlay_unavailable() -> str | None:
    """Why the overlay isolation cannot run on this machine, or ``None`` when it can."""
    if os.geteuid() != 0:
        return (
            "the CES is not running as root (a kernel overlayfs mount, a tmpfs per job and a "
            "memory cgroup per job need CAP_SYS_ADMIN; bubblewrap 0.8 has no overlay options)"
        )
    try:
        fs = Path("/proc/filesystems").read_text()
    except OSError as exc:
        return f"/proc/filesystems cannot be read ({exc})"
    if "\toverlay\n" not in fs:
        return "the kernel has no overlayfs (modprobe overlay)"
    if "\ttmpfs\n" not in fs:
        return "the kernel has no tmpfs"
    return None


def run_in_private_mount_ns(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a new thread with its own private mount namespace (see the module doc).
    Exceptions propagate; a namespace that cannot be created is an :class:`InfrastructureError`."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            try:
                _check(_libc.unshare(CLONE_FS | CLONE_NEWNS), "unshare(CLONE_NEWNS)")
                _check(
                    _libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None),
                    "mount --make-rprivate /",
                )
            except OSError as exc:
                raise InfrastructureError(
                    f"Cannot create a private mount namespace for the job ({exc.strerror}): the "
                    "CES needs root with CAP_SYS_ADMIN for its overlay isolation."
                ) from exc
            box["value"] = fn(*args)
        except BaseException as exc:  # re-raised on the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="ces-job", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def _opt_path(p: Path) -> str:
    s = str(p)
    if any(c in s for c in ",:\\\n"):
        raise InfrastructureError(
            f"The worker path {s!r} contains ',', ':' or '\\', which overlayfs options cannot "
            "hold: use a [ces] work_dir without them."
        )
    return s


class JobLayer:
    """An overlay of a per-job tmpfs upper layer on the read-only warm tree ``lower``.

    ``scratch`` (a new, unique directory) holds the two mount points; :meth:`mount` and
    :meth:`unmount` must run in a private mount namespace (:func:`run_in_private_mount_ns`)."""

    def __init__(self, lower: Path, scratch: Path, size_mb: int) -> None:
        self.lower = lower
        self.scratch = scratch
        self.size_bytes = max(1, size_mb) * 1024 * 1024
        self.fs = scratch / "fs"
        self.merged = scratch / "merged"
        self._mounted: list[Path] = []

    def mount(self) -> None:
        """Create the mount points and mount the tmpfs and the overlay. An ``OSError`` here
        (the host's disk full, no overlayfs) is the machine's fault: see the caller."""
        lower = _opt_path(self.lower)
        self.scratch.mkdir(parents=True)
        self.fs.mkdir()
        self.merged.mkdir()
        opts = f"size={self.size_bytes},mode=0700".encode()
        _check(
            _libc.mount(b"tmpfs", str(self.fs).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts),
            f"mount tmpfs on {self.fs}",
        )
        self._mounted.append(self.fs)
        upper, work = self.fs / "upper", self.fs / "work"
        upper.mkdir()
        work.mkdir()
        st = os.stat(self.lower)  # the merged root takes the upper root's owner and mode
        os.chown(upper, st.st_uid, st.st_gid)
        os.chmod(upper, stat.S_IMODE(st.st_mode))
        ov = f"lowerdir={lower},upperdir={_opt_path(upper)},workdir={_opt_path(work)}"
        _check(
            _libc.mount(
                b"overlay", str(self.merged).encode(), b"overlay", MS_NOSUID | MS_NODEV, ov.encode()
            ),
            f"mount overlay on {self.merged}",
        )
        self._mounted.append(self.merged)

    def used_bytes(self) -> int:
        st = os.statvfs(self.fs)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def free_bytes(self) -> int:
        st = os.statvfs(self.fs)
        return st.f_bavail * st.f_frsize

    def unmount(self) -> None:
        """Drop the overlay and the tmpfs (everything the job wrote) and the mount points."""
        for m in reversed(self._mounted):
            _libc.umount2(str(m).encode(), MNT_DETACH)
        self._mounted.clear()
        for d in (self.merged, self.fs, self.scratch):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            self.scratch.parent.rmdir()  # the worker's jobs/ directory, when empty


# ---------------------------------------------------------------------------- memory cgroups


def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup path for a v1 ``controller`` ("" for the v2 line)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and controller in parts[1].split(","):
            return parts[2]
        if len(parts) == 3 and controller == "" and parts[0] == "0" and parts[1] == "":
            return parts[2]
    return None


def memory_cgroup_parent() -> tuple[str, Path] | None:
    """(``"v1"``/``"v2"``, the directory new job groups go in), or ``None`` when there is no
    memory controller this process can use."""
    if os.geteuid() != 0:
        return None
    v1 = Path("/sys/fs/cgroup/memory")
    own = _own_cgroup("memory")
    if own is not None and (v1 / "memory.limit_in_bytes").exists():
        parent = v1 / own.lstrip("/")
        if parent.is_dir():
            return "v1", parent
    own2 = _own_cgroup("")
    root2 = Path("/sys/fs/cgroup")
    if own2 is not None and (root2 / "cgroup.controllers").exists():
        parent = root2 / own2.lstrip("/")
        try:
            if "memory" in (parent / "cgroup.subtree_control").read_text().split():
                return "v2", parent
        except OSError:
            return None
    return None


class MemoryCgroup:
    """One job's memory group. Processes join by writing their pid to :attr:`procs`."""

    def __init__(self, version: str, path: Path) -> None:
        self.version = version
        self.path = path
        self.procs = path / "cgroup.procs"

    @classmethod
    def create(cls, limit_bytes: int, tag: str) -> MemoryCgroup | None:
        """A new group limited to ``limit_bytes`` (RAM, swap included), or ``None`` where the
        machine has no usable memory controller (the rlimit fallback then holds)."""
        found = memory_cgroup_parent()
        if found is None:
            return None
        version, parent = found
        _remove_stale(parent)
        path = parent / f"bactrian-ces-{os.getpid()}-{tag}-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        group = cls(version, path)
        try:
            if version == "v1":
                (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
                memsw = path / "memory.memsw.limit_in_bytes"
                if memsw.exists():
                    memsw.write_text(str(limit_bytes))
            else:
                (path / "memory.max").write_text(str(limit_bytes))
                swap = path / "memory.swap.max"
                if swap.exists():
                    swap.write_text("0")
        except OSError:
            group.remove()
            raise
        return group

    def oom_kills(self) -> int:
        """How many processes the kernel killed for this group's limit so far."""
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, val = line.partition(" ")
                if key == "oom_kill":
                    return int(val)
        except (OSError, ValueError):
            pass
        return 0

    def peak_bytes(self) -> int:
        name = "memory.max_usage_in_bytes" if self.version == "v1" else "memory.peak"
        try:
            return int((self.path / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def kill_all(self) -> None:
        try:
            pids = [int(p) for p in self.procs.read_text().split()]
        except (OSError, ValueError):
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left in the group and delete it."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                self.kill_all()
                threading.Event().wait(0.02)  # the killed processes are reaped by the kernel


def _remove_stale(parent: Path) -> None:
    """Groups left by a CES process that died mid-job (their pid no longer exists)."""
    for d in parent.glob("bactrian-ces-*"):
        pid = d.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            MemoryCgroup("", d).remove()


def host_oom_kills() -> int:
    """The machine's OOM-kill counter (every OOM kill, cgroup limits included)."""
    try:
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
