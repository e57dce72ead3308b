"""The daemon as a real background process: start/status/stop, refusal of a second daemon,
and kill -9 at random moments followed by a restart that continues the same timeline."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from bactrian.errors import StoreError, StoreLockedError
from bactrian.snapshot import SnapshotConfig, open_store
from bactrian.snapshot.daemon import daemon_status, run_daemon, start_daemon, stop_daemon

from .conftest import make_git, tree_digest, write


def _wait_for(cond, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _count(ws: Path, cfg: SnapshotConfig) -> int:
    """Snapshots recorded so far; 0 while the daemon has not created the store yet (any other
    error is a failure, not a zero)."""
    try:
        store = open_store(ws, cfg)
    except StoreError as exc:
        if "No snapshots recorded" in str(exc):
            return 0
        raise
    try:
        return len(store.timeline())
    finally:
        store.close()


def _building(daemon: int, marker: str) -> bool:
    """Whether a descendant of process ``daemon`` runs a command line containing ``marker``."""
    parents: dict[int, int] = {}
    cmdlines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdlines[int(entry.name)] = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    for pid, cmd in cmdlines.items():
        if marker not in cmd:
            continue
        p = pid
        while p > 1:
            p = parents.get(p, 0)
            if p == daemon:
                return True
    return False


def test_start_status_second_daemon_refused_stop(tmp_path: Path) -> None:
    ws = make_git(tmp_path / "ws")
    cfg = SnapshotConfig(probe="none", store_dir=tmp_path / "store", interval_s=0.2)
    before = tree_digest(ws)
    st = start_daemon(ws, cfg)
    try:
        assert st.running and st.pid and st.pid != os.getpid()
        nice = int(Path(f"/proc/{st.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        assert nice >= 10  # runs at low priority
        _wait_for(lambda: _count(ws, cfg) >= 1)
        with pytest.raises(StoreLockedError, match=f"pid {st.pid}.*already recording"):
            start_daemon(ws, cfg)
        with pytest.raises(StoreLockedError, match="snapshot stop"):
            run_daemon(ws, cfg, max_ticks=1)  # in-process attempt is refused too
        write(ws, {"src/more.ml": "let more = 1\n"})
        _wait_for(lambda: _count(ws, cfg) >= 2)
        assert daemon_status(ws, cfg).snapshots >= 2
    finally:
        assert stop_daemon(ws, cfg)
    status = daemon_status(ws, cfg)
    assert not status.running and status.pid is None
    assert not stop_daemon(ws, cfg)
    after = tree_digest(ws)
    assert {k: v for k, v in after.items() if k != "src/more.ml"} == before
    assert "recording" in Path(status.log).read_text()


def test_in_process_daemon_ticks_and_stops(tmp_path: Path) -> None:
    ws = make_git(tmp_path / "ws")
    cfg = SnapshotConfig(probe="none", store_dir=tmp_path / "store", interval_s=0.01)
    stop = threading.Event()
    t = threading.Thread(target=run_daemon, args=(ws, cfg), kwargs={"stop": stop})
    t.start()
    try:
        _wait_for(lambda: _count(ws, cfg) >= 1)
        write(ws, {"x.ml": "let x = 1\n"})
        _wait_for(lambda: _count(ws, cfg) >= 2)
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()
    assert not daemon_status(ws, cfg).running


def test_kill_9_at_random_moments_then_restart_continues(tmp_path: Path) -> None:
    ws = make_git(tmp_path / "ws")
    write(ws, {f"src/m{i}.ml": f"let v{i} = {i}\n" for i in range(200)})
    cfg = SnapshotConfig(probe="none", store_dir=tmp_path / "store", interval_s=0.0, repack_every=3)
    stop = threading.Event()

    def edit() -> None:
        i = 0
        while not stop.is_set():
            write(ws, {f"src/m{i % 200}.ml": f"let v = {i}\n" * (1 + i % 5)})
            i += 1
            time.sleep(0.002)

    editor = threading.Thread(target=edit, daemon=True)
    editor.start()
    rng = random.Random(7)
    seen = 0
    try:
        for _ in range(5):
            st = start_daemon(ws, cfg)
            _wait_for(
                lambda n=seen: _count(ws, cfg) > n
            )  # the timeline moves on after each restart
            time.sleep(rng.uniform(0.0, 0.4))
            assert st.pid is not None
            os.kill(st.pid, signal.SIGKILL)
            _wait_for(lambda: not daemon_status(ws, cfg).running, timeout=10)
            seen = _count(ws, cfg)
    finally:
        stop.set()
        editor.join()
    store = open_store(ws, cfg)
    snaps = store.timeline()
    assert [s.seq for s in snaps] == list(range(1, len(snaps) + 1))
    assert all(b.parent == a.id for a, b in zip(snaps, snaps[1:], strict=False))
    assert store.fsck() == []
    # a restart continues the same timeline
    write(ws, {"final.ml": "let final = ()\n"})
    st = start_daemon(ws, cfg)
    try:
        _wait_for(lambda: "final.ml" in open_store(ws, cfg).file_list(open_store(ws, cfg).get(-1)))
    finally:
        stop_daemon(ws, cfg)
    final = open_store(ws, cfg).timeline()
    assert final[: len(snaps)] == snaps and final[len(snaps)].parent == snaps[-1].id


def test_kill_9_while_the_build_runs(tmp_path: Path) -> None:
    """Killed after the index was staged but before the commit: the restarted daemon commits
    the staged state with a correct change count."""
    ws = make_git(tmp_path / "ws")
    build = "sleep 3.25; exit 0"  # a marker to find the build by in /proc
    cfg = SnapshotConfig(store_dir=tmp_path / "store", interval_s=0.05, build_cmd=build)
    st = start_daemon(ws, cfg)
    assert st.pid is not None
    _wait_for(lambda: _count(ws, cfg) >= 1)
    write(ws, {"src/one.ml": "let one = 1\n", "src/two.ml": "let two = 2\n"})
    # the first snapshot's build is over: a build running now is the second one, which starts
    # after the daemon staged the change
    daemon = st.pid
    _wait_for(lambda: _building(daemon, "sleep 3.25"))
    os.kill(st.pid, signal.SIGKILL)
    _wait_for(lambda: not daemon_status(ws, cfg).running, timeout=10)
    assert _count(ws, cfg) == 1
    start_daemon(ws, cfg)
    try:
        _wait_for(lambda: _count(ws, cfg) >= 2)
    finally:
        stop_daemon(ws, cfg)
    store = open_store(ws, cfg)
    snap = store.get(2)
    assert snap.changed_files == 2 and snap.build.state.value == "green"
    assert {"src/one.ml", "src/two.ml"} <= set(store.file_list(snap))
    assert store.fsck() == []
