"""Where the sidecar lives and who may talk to it: the socket path, its private state
directory (``0700``), the one-server lock, the pid file, the peer's uid (``SO_PEERCRED``),
and client paths resolved inside the workspace (no ``..``, no symlink out of it)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bactrian.aid.protocol import PATH_OUTSIDE_WORKSPACE, RpcError
from bactrian.errors import BactrianError


class AidError(BactrianError):
    """The sidecar cannot start, or a command cannot reach it."""


def default_socket() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "bactrian" / "aid.sock"
    return Path(f"/tmp/bactrian-{os.getuid()}") / "aid.sock"


def socket_path(explicit: str | Path | None = None, configured: str = "") -> Path:
    chosen = explicit or configured
    return Path(chosen).expanduser().absolute() if chosen else default_socket()


def private_dir(path: Path) -> Path:
    """Create ``path`` mode 0700 (parents too), or check that an existing one is a real
    directory owned by this user, and tighten its mode to 0700."""
    try:
        if not path.is_symlink() and not path.exists():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.lstat()
    except OSError as exc:
        raise AidError(
            f"Cannot create the sidecar's directory {path}: {exc.strerror or exc}."
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise AidError(
            f"{path} is not a directory (a symlink?): remove it or choose another --socket."
        )
    if st.st_uid != os.getuid():
        raise AidError(
            f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}): another user "
            "could read your sidecar's traffic. Choose a --socket in a directory of yours."
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


@dataclass(frozen=True)
class Layout:
    """The files of one sidecar: ``socket`` and, in the private ``state`` directory, the
    lock, the pid file (JSON), the log and the proposal store."""

    socket: Path

    @property
    def state(self) -> Path:
        return self.socket.parent / f".{self.socket.name}.d"

    @property
    def lock(self) -> Path:
        return self.state / "lock"

    @property
    def pidfile(self) -> Path:
        return self.state / "server.json"

    @property
    def log(self) -> Path:
        return self.state / "server.log"

    @property
    def proposals(self) -> Path:
        return self.state / "proposals.sqlite"

    def prepare(self) -> None:
        parent = self.socket.parent
        if not parent.exists():
            private_dir(parent)
        elif parent == default_socket().parent:
            private_dir(parent)  # our own directory: keep it 0700
        private_dir(self.state)

    def read_pid(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_pid(self, info: dict[str, Any]) -> None:
        tmp = self.pidfile.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.pidfile)


class ServerLock:
    """An exclusive ``flock`` on the state directory's lock file: one server per socket. A
    crashed server's lock is released by the kernel, so its stale socket can be reclaimed."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def acquire_or_fail(self) -> None:
        if self.try_acquire():
            return
        info = self.layout.read_pid() or {}
        raise AidError(
            f"Another aid server (pid {info.get('pid', '?')}) already serves "
            f"{self.layout.socket}. Use `bactrian aid restart` to replace it, "
            "`bactrian aid status` to see it, or --socket for another one."
        )

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                os.close(self.fd)
            self.fd = None


def bind_socket(path: Path, mode: int = 0o600) -> socket.socket:
    """A listening Unix socket at ``path`` created with ``mode`` (no window in which it is
    more open: the umask is set while binding)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~mode)
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise AidError(f"Cannot bind the sidecar's socket {path}: {exc.strerror or exc}.") from None
    finally:
        os.umask(old)
    os.chmod(path, mode)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end (``SO_PEERCRED``, Linux)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _outside(path: str, why: str) -> RpcError:
    return RpcError(
        PATH_OUTSIDE_WORKSPACE,
        f"Path {path[:200]!r} is refused: {why}. Send paths relative to the workspace root.",
        {"path": path[:200]},
    )


def workspace_path(root: Path, path: str) -> str:
    """``path`` (relative, or absolute inside ``root``) as a clean relative path whose real
    location stays inside ``root`` (symlinks followed). ``root`` must be a real path."""
    if not path or "\0" in path:
        raise _outside(path, "it is empty or holds a NUL byte")
    p = Path(path)
    if p.is_absolute():
        try:
            p = Path(os.path.normpath(p)).relative_to(root)
        except ValueError:
            raise _outside(path, f"it is outside the workspace {root}") from None
    if any(part == ".." for part in p.parts):
        raise _outside(path, "it contains '..'")
    rel = p.as_posix()
    if rel in ("", "."):
        raise _outside(path, "it names the workspace root itself")
    real = Path(os.path.realpath(root / rel))
    try:
        real.relative_to(root)
    except ValueError:
        raise _outside(
            path, f"it goes through a symbolic link out of the workspace ({real})"
        ) from None
    return rel
