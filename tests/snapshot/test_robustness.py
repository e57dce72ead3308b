"""Bad inputs: symlinks, non-UTF-8 names, huge files, vanishing files, permission errors and
a full disk each give a log line and the next snapshot proceeds."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bactrian.snapshot import SnapshotConfig, open_store, take_snapshot

from .conftest import make_plain, write


def _all_object_bytes(store_root: Path) -> bytes:
    env = {**os.environ, "GIT_DIR": str(store_root / "repo.git")}
    return subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        env=env,
        capture_output=True,
        check=True,
    ).stdout


def test_symlinks_are_stored_as_links_never_followed(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_plain(tmp_path / "ws")
    outside = tmp_path / "outside"
    write(outside, {"secret.txt": "OUTSIDE-CONTENT-7731\n"})
    (ws / "inside_link.ml").symlink_to("src/shapes.ml")
    (ws / "out_file").symlink_to(outside / "secret.txt")
    (ws / "out_dir").symlink_to(outside)
    (ws / "dangling").symlink_to(tmp_path / "nowhere")
    snap = take_snapshot(ws, config=cfg)
    store = open_store(ws, cfg)
    files = store.read_files(snap)
    assert files["inside_link.ml"] == b"src/shapes.ml"
    assert files["out_file"] == str(outside / "secret.txt").encode()
    assert files["out_dir"] == str(outside).encode()
    assert "dangling" in files
    assert not any(p.startswith("out_dir/") for p in files)
    assert b"OUTSIDE-CONTENT-7731" not in _all_object_bytes(store.root)
    dest = tmp_path / "copy"
    store.materialize(snap, dest)
    assert os.readlink(dest / "inside_link.ml") == "src/shapes.ml"


def test_non_utf8_name_is_skipped_with_one_log_line(
    tmp_path: Path, cfg: SnapshotConfig, caplog: pytest.LogCaptureFixture
) -> None:
    ws = make_plain(tmp_path / "ws")
    bad = os.path.join(os.fsencode(ws), b"caf\xe9.ml")
    with open(bad, "wb") as fh:
        fh.write(b"let x = 1\n")
    with caplog.at_level(logging.WARNING):
        snap = take_snapshot(ws, config=cfg)
    assert "not valid UTF-8" in caplog.text
    assert caplog.text.count("not valid UTF-8") == 1
    assert "src/shapes.ml" in open_store(ws, cfg).file_list(snap)
    write(ws, {"next.ml": "let y = 2\n"})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        snap2 = take_snapshot(ws, config=cfg)
    assert snap2.seq == 2 and "UTF-8" not in caplog.text


def test_huge_file_skipped(
    tmp_path: Path, cfg: SnapshotConfig, caplog: pytest.LogCaptureFixture
) -> None:
    ws = make_plain(tmp_path / "ws")
    with open(ws / "huge.ml", "wb") as fh:
        fh.truncate(50_000_000)  # sparse: big but cheap
    with caplog.at_level(logging.WARNING):
        snap = take_snapshot(ws, config=cfg)
    assert "huge.ml: larger than max_file_bytes" in caplog.text
    assert "huge.ml" not in open_store(ws, cfg).file_list(snap)


def test_special_files_and_nested_repos_skipped(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_plain(tmp_path / "ws")
    os.mkfifo(ws / "pipe")
    nested = ws / "vendor" / "lib"
    write(nested, {"a.ml": "let a = 1\n"})
    subprocess.run(["git", "init", "-q"], cwd=nested, check=True)
    snap = take_snapshot(ws, config=cfg)
    files = open_store(ws, cfg).file_list(snap)
    assert "pipe" not in files and "src/shapes.ml" in files
    assert not any(f.startswith("vendor/") for f in files)


def test_files_vanishing_mid_scan(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_plain(tmp_path / "ws")
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            p = ws / "churn" / f"f{i % 50}.ml"
            p.parent.mkdir(exist_ok=True)
            p.write_text(f"let v = {i}\n")
            if i % 3:
                (ws / "churn" / f"f{(i * 7) % 50}.ml").unlink(missing_ok=True)
            i += 1

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        snaps = [take_snapshot(ws, config=cfg) for _ in range(15)]
    finally:
        stop.set()
        t.join()
    store = open_store(ws, cfg)
    assert [s.seq for s in store.timeline()] == list(range(1, snaps[-1].seq + 1))
    assert snaps[-1].seq > 1
    assert store.fsck() == []
    for s in store.timeline():
        assert "src/shapes.ml" in store.read_files(s)


@pytest.mark.needs_root  # files owned by another user
def test_permission_errors(tmp_path: Path, cfg: SnapshotConfig) -> None:
    """Root reads everything, so the snapshot runs under bubblewrap with all capabilities
    dropped; files owned by another user with mode 0600/0700 are then unreadable."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    ws = make_plain(tmp_path / "ws")
    write(ws, {"locked.ml": "let secret = 1\n", "closed/inner.ml": "let i = 1\n"})
    for p, mode in (
        (ws / "locked.ml", 0o600),
        (ws / "closed" / "inner.ml", 0o600),
        (ws / "closed", 0o700),
    ):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
        p.chmod(mode)
    code = (
        "import logging; logging.basicConfig(level=logging.WARNING)\n"
        "from pathlib import Path\n"
        "from bactrian.snapshot import SnapshotConfig, open_store, take_snapshot\n"
        f"cfg = SnapshotConfig(probe='none', store_dir=Path({str(cfg.store_dir)!r}))\n"
        f"s = take_snapshot(Path({str(ws)!r}), config=cfg)\n"
        f"print(sorted(open_store(Path({str(ws)!r}), cfg).file_list(s)))\n"
    )
    argv = ["bwrap", "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--cap-drop", "ALL"]
    proc = subprocess.run([*argv, sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "locked.ml: cannot read: Permission denied" in proc.stderr
    assert "'src/shapes.ml'" in proc.stdout and "locked.ml" not in proc.stdout
    assert "closed/inner.ml" not in proc.stdout
    # the next snapshot (with permissions back) picks the files up
    (ws / "locked.ml").chmod(0o644)
    (ws / "closed").chmod(0o755)
    (ws / "closed" / "inner.ml").chmod(0o644)
    write(ws, {"src/shapes.ml": "let touched = ()\n"})
    snap = take_snapshot(ws, config=cfg)
    assert {"locked.ml", "closed/inner.ml"} <= set(open_store(ws, cfg).file_list(snap))


def test_disk_full_then_next_snapshot_recovers(tmp_path: Path, cfg: SnapshotConfig) -> None:
    """RLIMIT_FSIZE makes every write past 64 KiB fail (EFBIG), like a full disk."""
    ws = make_plain(tmp_path / "ws")
    take_snapshot(ws, config=cfg)
    write(ws, {"data.ml": os.urandom(300_000).hex()[:600_000]})
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))\n"
        "from pathlib import Path\n"
        "from bactrian.errors import StoreError\n"
        "from bactrian.snapshot import SnapshotConfig, take_snapshot\n"
        f"cfg = SnapshotConfig(probe='none', store_dir=Path({str(cfg.store_dir)!r}))\n"
        "try:\n"
        f"    take_snapshot(Path({str(ws)!r}), config=cfg)\n"
        "except StoreError as exc:\n"
        "    print('STORE-ERROR', exc); sys.exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "STORE-ERROR" in proc.stdout
    store = open_store(ws, cfg)
    assert [s.seq for s in store.timeline()] == [1]
    snap = take_snapshot(ws, config=cfg)
    assert snap.seq == 2 and "data.ml" in store.file_list(snap)
    assert store.fsck() == []


def test_workspace_deleted_under_the_daemon(tmp_path: Path, cfg: SnapshotConfig) -> None:
    from bactrian.errors import WorkspaceError
    from bactrian.snapshot.daemon import _tick
    from bactrian.snapshot.take import open_for_writing, record

    ws = make_plain(tmp_path / "ws")
    store = open_for_writing(ws, cfg)
    record(store)
    shutil.rmtree(ws)
    with pytest.raises(WorkspaceError, match="does not exist any more"):
        record(store)
    _tick(store, None)  # the daemon logs it and carries on
    ws.mkdir()
    write(ws, {"back.ml": "let back = 1\n"})
    snap = record(store)
    assert snap.seq == 2 and store.file_list(snap) == ["back.ml"]
