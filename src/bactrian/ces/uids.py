"""Sandbox uids that no two live workers share, on the whole machine.

Each worker's sandboxed processes run as an unprivileged uid of its own, so ``RLIMIT_NPROC``
(counted per uid), file ownership and signals never cross workers. A uid is *leased*: the worker
holds an exclusive ``flock`` on ``<registry>/<uid>.lock`` for as long as it lives, and a lease
is granted only when that lock can be taken. Two pools — in one process, in two processes, in
two data directories — therefore never get the same uid while both hold it; the kernel drops
the lock when its holder exits (even killed), so a crashed worker's uid is free again at once.

The registry is machine-wide: ``/run/bactrian/ces-uids`` as root (where uids are used at all),
else ``<data dir>/ces-uids`` (``[ces] uid_dir`` overrides). A worker asks first for the uid it
had before (kept in its ``state.json``: its warm tree is already owned by it), then for one
derived from its directory's name, then for the next free one of the range.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from pathlib import Path

from bactrian.config import data_dir
from bactrian.errors import CESError

UID_BASE = 61000
UID_COUNT = 4000
ROOT_REGISTRY = Path("/run/bactrian/ces-uids")


def default_registry() -> Path:
    return ROOT_REGISTRY if os.geteuid() == 0 else data_dir() / "ces-uids"


def preferred_uid(key: str) -> int:
    """The uid a worker keyed ``key`` asks for first (stable, not unique)."""
    return UID_BASE + zlib.crc32(key.encode()) % UID_COUNT


class UidLease:
    """One uid, held until :meth:`release` (or the holder's exit)."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the only descriptor drops the flock

    def __del__(self) -> None:
        self.release()


def lease_uid(key: str, *, prefer: int | None = None, registry: Path | None = None) -> UidLease:
    """A uid no other live lease on this machine holds (see the module's docstring)."""
    reg = Path(registry) if registry is not None else default_registry()
    try:
        reg.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise CESError(
            f"Cannot create the CES uid registry {reg}: {exc.strerror or exc}. Set [ces] uid_dir "
            "to a writable directory."
        ) from exc
    first = prefer if prefer is not None and UID_BASE <= prefer < UID_BASE + UID_COUNT else None
    start = preferred_uid(key) - UID_BASE
    order = [first] if first is not None else []
    order += [UID_BASE + (start + i) % UID_COUNT for i in range(UID_COUNT)]
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    for uid in order:
        try:
            fd = os.open(reg / f"{uid}.lock", flags, 0o600)
        except OSError as exc:
            raise CESError(f"Cannot use the CES uid registry {reg}: {exc}.") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UidLease(uid, fd)
    raise CESError(
        f"All {UID_COUNT} CES sandbox uids ({UID_BASE}–{UID_BASE + UID_COUNT - 1}) are held by "
        f"live workers (registry {reg}): close some pools first."
    )
