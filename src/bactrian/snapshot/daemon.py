"""The snapshot daemon: one background process per workspace that takes a snapshot every
``interval_s`` seconds. Its lock (``flock`` on ``daemon.lock``), pid and log live in the
workspace's store directory, never in the workspace. A second daemon on the same workspace
is refused. SIGTERM (``bactrian snapshot stop``) finishes the current snapshot and exits;
``kill -9`` at any moment is safe (see :mod:`bactrian.snapshot.take`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bactrian.config import load_section
from bactrian.errors import BactrianError, ConfigError, StoreError, StoreLockedError
from bactrian.snapshot.config import SnapshotConfig, load_config
from bactrian.snapshot.store import Store, resolve_workspace, store_root
from bactrian.snapshot.take import open_for_writing, record, resolve_probe

log = logging.getLogger("bactrian.snapshot.daemon")


def _read_pid(root: Path) -> int | None:
    try:
        return int((root / "daemon.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _lock_held(root: Path) -> bool:
    """Whether some process holds the daemon lock of this store."""
    path = root / "daemon.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)
    return False


def acquire_daemon_lock(store: Store) -> int:
    """Take the daemon lock (returns its fd) or raise :class:`StoreLockedError`."""
    fd = os.open(store.root / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise StoreError(f"Cannot lock {store.root / 'daemon.lock'}: {exc}.") from exc
        pid = _read_pid(store.root)
        raise StoreLockedError(
            f"A snapshot daemon (pid {pid or '?'}) is already recording {store.workspace}. "
            f"Stop it first with `bactrian snapshot stop {store.workspace}`."
        ) from None
    return fd


def _tick(store: Store, probe: Any) -> None:
    try:
        last = store.last()
        snap = record(store, probe)
        if last is None or snap.seq != last.seq:
            log.info(
                "snapshot %d: %s, %d files changed %s",
                snap.seq,
                snap.build.state.value,
                snap.changed_files,
                snap.headline(),
            )
    except (BactrianError, OSError, sqlite3.Error) as exc:
        log.warning("%s: snapshot failed, retrying next interval: %s", store.workspace, exc)
    except Exception:  # never let one bad snapshot end the daemon
        log.exception("%s: unexpected error while taking a snapshot", store.workspace)


def run_daemon(
    workspace: Path | str,
    config: SnapshotConfig | None = None,
    *,
    stop: threading.Event | None = None,
    max_ticks: int | None = None,
) -> None:
    """Take a snapshot every ``config.interval_s`` until ``stop`` is set, SIGTERM/SIGINT
    arrives (in the main thread) or ``max_ticks`` snapshots were attempted."""
    config = config or load_config()
    store = open_for_writing(workspace, config)
    fd = acquire_daemon_lock(store)
    stop = stop or threading.Event()
    pid_file = store.root / "daemon.pid"
    try:
        pid_file.write_text(f"{os.getpid()}\n")
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        probe = resolve_probe(store.workspace, config)
        log.info(
            "recording %s every %.1fs (probe %s) into %s",
            store.workspace,
            config.interval_s,
            getattr(probe, "name", "?"),
            store.root,
        )
        ticks = 0
        while not stop.is_set():
            started = time.monotonic()
            _tick(store, probe)
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
            stop.wait(max(0.0, config.interval_s - (time.monotonic() - started)))
    finally:
        with contextlib.suppress(OSError):
            pid_file.unlink()
        store.close()
        os.close(fd)
        log.info("stopped recording %s", store.workspace)


def config_to_dict(config: SnapshotConfig) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    d["store_dir"] = str(config.resolved_store_dir())
    return d


def config_from_file(path: Path) -> SnapshotConfig:
    """The exact settings a parent ``start`` handed to its background daemon."""
    try:
        data = json.loads(path.read_text())
        return load_section(SnapshotConfig, "snapshot", file_data={"snapshot": data}, env={})
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read daemon settings {path}: {exc}.") from exc


@dataclass
class DaemonStatus:
    workspace: str
    running: bool
    pid: int | None
    store: str
    log: str
    snapshots: int
    last_time: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def daemon_status(workspace: Path | str, config: SnapshotConfig | None = None) -> DaemonStatus:
    config = config or load_config()
    ws = resolve_workspace(workspace, must_exist=False)
    root = store_root(ws, config)
    running = _lock_held(root)
    count, last_time = 0, None
    if (root / "index.sqlite").exists():
        db = sqlite3.connect(str(root / "index.sqlite"), timeout=5)
        try:
            count, last_time = db.execute("SELECT COUNT(*), MAX(time) FROM snapshots").fetchone()
        except sqlite3.Error:
            pass
        finally:
            db.close()
    return DaemonStatus(
        workspace=str(ws),
        running=running,
        pid=_read_pid(root) if running else None,
        store=str(root),
        log=str(root / "daemon.log"),
        snapshots=count,
        last_time=last_time,
    )


def start_daemon(
    workspace: Path | str,
    config: SnapshotConfig | None = None,
    *,
    wait_s: float = 10.0,
) -> DaemonStatus:
    """Start a background daemon (``bactrian snapshot start --foreground`` in a new session,
    output appended to ``daemon.log`` in the store). Returns once it holds its lock."""
    config = config or load_config()
    store = open_for_writing(workspace, config)
    root, ws = store.root, store.workspace
    store.close()
    if _lock_held(root):
        raise StoreLockedError(
            f"A snapshot daemon (pid {_read_pid(root) or '?'}) is already recording {ws}. "
            f"Stop it first with `bactrian snapshot stop {ws}`."
        )
    settings = root / "daemon.config.json"
    settings.write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
    argv = [sys.executable, "-m", "bactrian.cli", "-v", "snapshot", "start", str(ws)]
    argv += ["--foreground", "--config-json", str(settings)]
    env = dict(os.environ)
    with open(root / "daemon.log", "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
            env=env,
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (root / "daemon.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise StoreError(
                f"The snapshot daemon for {ws} exited at once (status {proc.returncode}): "
                + " | ".join(tail)
            )
        if _read_pid(root) == proc.pid and _lock_held(root):
            return daemon_status(ws, config)
        time.sleep(0.05)
    raise StoreError(
        f"The snapshot daemon for {ws} did not start within {wait_s}s; see {root}/daemon.log."
    )


def stop_daemon(
    workspace: Path | str, config: SnapshotConfig | None = None, *, timeout_s: float = 30.0
) -> bool:
    """Ask the daemon to finish its current snapshot and exit (SIGTERM; SIGKILL after
    ``timeout_s``, which is safe). Returns False when none was running."""
    status = daemon_status(workspace, config)
    if not status.running or status.pid is None:
        return False
    root = Path(status.store)
    with contextlib.suppress(ProcessLookupError):
        os.kill(status.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _lock_held(root):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(status.pid, signal.SIGKILL)
    while _lock_held(root):
        time.sleep(0.05)
    return True
