"""Reading the store: refs, files, materialize, diff, reindex/reconcile, fsck, round-trips."""

from __future__ import annotations

import shutil
import sqlite3
import string
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bactrian.errors import StoreError
from bactrian.snapshot import SnapshotConfig, list_workspaces, open_store, take_snapshot

from .conftest import damage_object, make_git, make_plain, write


def _three_snapshots(tmp_path: Path, cfg: SnapshotConfig) -> Path:
    ws = make_git(tmp_path / "ws")
    take_snapshot(ws, config=cfg, now=100.0)
    write(ws, {"src/shapes.ml": "type t = Circle of float\nlet area _ = 0.\n"})
    take_snapshot(ws, config=cfg, now=200.0)
    (ws / "test" / "test_shapes.ml").unlink()
    write(ws, {"src/new.ml": "let fresh = 42\n", "run.sh": "#!/bin/sh\necho hi\n"})
    (ws / "run.sh").chmod(0o755)
    take_snapshot(ws, config=cfg, now=300.0)
    return ws


def test_get_by_seq_prefix_and_errors(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = _three_snapshots(tmp_path, cfg)
    store = open_store(ws, cfg)
    s2 = store.get(2)
    assert s2.time == 200.0
    assert store.get("2").id == s2.id == store.get(s2.id[:8]).id
    assert store.get(-1).seq == 3 == store.get("latest").seq
    with pytest.raises(StoreError, match="No snapshot '9'"):
        store.get(9)
    with pytest.raises(StoreError, match="snapshot list"):
        store.get("zzz")


def test_open_store_without_snapshots(tmp_path: Path, cfg: SnapshotConfig) -> None:
    with pytest.raises(StoreError, match="snapshot take"):
        open_store(make_plain(tmp_path / "ws"), cfg)


def test_read_materialize_and_diff_apply(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = _three_snapshots(tmp_path, cfg)
    store = open_store(ws, cfg)
    s1, s3 = store.get(1), store.get(3)
    got = store.read_files(s3, ["src/new.ml", "src/missing.ml"])
    assert got == {"src/new.ml": b"let fresh = 42\n"}

    a, b = tmp_path / "a", tmp_path / "b"
    store.materialize(s1, a)
    store.materialize(s3, b)
    assert (a / "test" / "test_shapes.ml").exists() and not (b / "test" / "test_shapes.ml").exists()
    assert (b / "run.sh").stat().st_mode & 0o111

    patch = store.diff(s1, s3)
    assert "diff --git a/src/new.ml b/src/new.ml" in patch
    assert "deleted file mode" in patch
    subprocess.run(["git", "apply", "--unsafe-paths", "-"], input=patch.encode(), cwd=a, check=True)
    assert store.read_files(s3) == {
        str(p.relative_to(a)): p.read_bytes() for p in a.rglob("*") if p.is_file()
    }
    only = store.diff(s1, s3, ["src/new.ml"])
    assert "src/new.ml" in only and "shapes" not in only


def test_reconcile_after_kill_between_ref_and_row(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = _three_snapshots(tmp_path, cfg)
    store = open_store(ws, cfg)
    ids = [s.id for s in store.timeline()]
    db = sqlite3.connect(store.root / "index.sqlite")
    db.execute("DELETE FROM snapshots WHERE seq >= 2")  # as if killed before the row inserts
    db.commit()
    db.close()
    store.close()
    again = open_store(ws, cfg)
    assert [s.id for s in again.timeline()] == ids
    write(ws, {"src/after.ml": "let a = 1\n"})
    assert take_snapshot(ws, config=cfg).seq == 4


def test_reindex_rebuilds_from_repository(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = _three_snapshots(tmp_path, cfg)
    store = open_store(ws, cfg)
    before = [s.to_dict() for s in store.timeline()]
    store.close()
    (store.root / "index.sqlite").unlink()
    store = open_store(ws, cfg)  # reconciles from scratch
    assert [s.to_dict() for s in store.timeline()] == before
    assert store.reindex() == 3
    assert [s.to_dict() for s in store.timeline()] == before


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_fsck_detects_damaged_object(tmp_path: Path, cfg: SnapshotConfig, damage: str) -> None:
    ws = _three_snapshots(tmp_path, cfg)
    store = open_store(ws, cfg)
    assert store.fsck() == []
    blob = store.git.out("rev-parse", f"{store.get(3).tree_id}:src/new.ml").strip()
    damage_object(store.git_dir, blob, damage)
    problems = store.fsck()
    assert problems and any(blob in p for p in problems)


def test_fsck_detects_index_ahead_of_ref(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = _three_snapshots(tmp_path, cfg)
    store = open_store(ws, cfg)
    s2 = store.get(2)
    store.git.run("update-ref", "refs/heads/timeline", s2.id)
    problems = store.fsck()
    assert any("timeline ref" in p for p in problems)


def test_list_workspaces(tmp_path: Path, cfg: SnapshotConfig) -> None:
    a = make_plain(tmp_path / "a")
    b = make_plain(tmp_path / "b")
    take_snapshot(a, config=cfg)
    take_snapshot(b, config=cfg)
    assert list_workspaces(cfg) == sorted([a.resolve(), b.resolve()])


names = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=8)
trees = st.dictionaries(
    st.lists(names, min_size=1, max_size=3).map(lambda parts: "/".join(parts)),
    st.binary(max_size=300).filter(lambda b: b"\0" not in b[:8000]),
    min_size=1,
    max_size=8,
)


def _valid(tree: dict[str, bytes]) -> bool:
    paths = set(tree)
    return not any(p.startswith(q + "/") for p in paths for q in paths)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=trees, second=trees)
def test_random_trees_round_trip(tmp_path_factory: pytest.TempPathFactory, first, second) -> None:
    assume(_valid(first) and _valid(second))
    base = tmp_path_factory.mktemp("rt")
    cfg = SnapshotConfig(probe="none", store_dir=base / "store", ignore=[], secret_patterns=[])
    ws = base / "ws"
    ws.mkdir()
    write(ws, dict(first))
    s1 = take_snapshot(ws, config=cfg)
    shutil.rmtree(ws)
    ws.mkdir()
    write(ws, dict(second))
    s2 = take_snapshot(ws, config=cfg)
    store = open_store(ws, cfg)
    assert store.read_files(s1) == first
    assert store.read_files(s2) == second
    assert (s1.tree_id == s2.tree_id) == (first == second)


def test_lost_ref_is_restored_from_the_index(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = _three_snapshots(tmp_path, cfg)
    store = open_store(ws, cfg)
    last = store.get(-1)
    store.close()
    (store.git_dir / "refs" / "heads" / "timeline").write_text("")  # e.g. power loss
    again = open_store(ws, cfg)
    assert again.head() == last.id and again.fsck() == []
    write(ws, {"src/later.ml": "let later = 1\n"})
    snap = take_snapshot(ws, config=cfg)
    assert (snap.seq, snap.parent) == (4, last.id)
