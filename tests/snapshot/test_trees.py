"""The in-process write path (blobs and trees written here, ``update-index --index-info``)
must record exactly what git's own ``update-index`` + ``write-tree`` would."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bactrian.snapshot import SnapshotConfig, open_store, take_snapshot
from bactrian.snapshot.gitrepo import GitRepo, init_repo, write_object, write_pack
from bactrian.snapshot.store import Store
from bactrian.snapshot.trees import TREE_MODE, format_tree, parse_tree, tree_id

from .conftest import make_git, tree_digest, write


def git_tree_of(store: Store) -> str:
    """What git computes from the store's index (a copy, so the store is left alone)."""
    copy = store.root / "index.check"
    shutil.copyfile(store.index_file, copy)
    try:
        return GitRepo(store.git_dir, store.workspace, copy).out("write-tree").strip()
    finally:
        copy.unlink()


def in_process(store: Store) -> bool:
    """The last snapshot's tree was written in-process (the counter only grows there)."""
    return int(store.db.get_meta("dirs_since_write_tree", "0")) > 0


def check(ws: Path, cfg: SnapshotConfig, *, expect_in_process: bool = True) -> None:
    snap = take_snapshot(ws, config=cfg)
    store = open_store(ws, cfg)
    try:
        assert snap.tree_id == git_tree_of(store)
        assert in_process(store) == expect_in_process
        files = {
            p: (ws / p).read_bytes() if not (ws / p).is_symlink() else os.readlink(ws / p).encode()
            for p in store.file_list(snap)
        }
        assert store.read_files(snap) == files
        assert store.fsck() == []
        status = store.work_git.out("status", "--porcelain=v2", "--untracked-files=all")
        assert status == ""  # the index (stat cache) agrees with the workspace and the tree
    finally:
        store.close()


def test_changes_of_every_kind_match_git(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_git(tmp_path / "ws")
    write(ws, {"lib/a/deep/x.ml": "let x = 1\n", "lib/b.ml": "let b = 2\n"})
    vcs_before = tree_digest(ws / ".git")
    take_snapshot(ws, config=cfg)  # first snapshot: git's bulk path
    write(ws, {"src/shapes.ml": "let area _ = 0.\n"})  # modify
    check(ws, cfg)
    write(ws, {"new/dir/deeper/n.ml": "let n = 3\n"})  # add in new nested directories
    check(ws, cfg)
    (ws / "lib/a/deep/x.ml").unlink()  # delete: lib/a/deep and lib/a become empty
    check(ws, cfg)
    os.symlink("../src/shapes.ml", ws / "lib/link.ml")  # a symlink, stored as a symlink
    (ws / "test/test_shapes.ml").chmod(0o755)  # executable bit only
    check(ws, cfg)
    (ws / "lib/b.ml").unlink()  # a file becomes a directory
    write(ws, {"lib/b.ml/inner.ml": "let i = 4\n"})
    check(ws, cfg)
    shutil.rmtree(ws / "new")  # a directory becomes a file
    write(ws, {"new": "plain file\n"})
    check(ws, cfg)
    twins = {"src/extra.ml": "let e = 5\n", "lib/twin.ml": "let e = 5\n"}  # one blob
    write(ws, {"src/shapes.ml": "let area _ = 1.\n", **twins})
    os.remove(ws / "dune-project")  # several at once, at several depths
    check(ws, cfg)
    assert tree_digest(ws / ".git") == vcs_before  # the user's repository is untouched


def test_damaged_tree_cache_is_a_miss_not_a_wrong_tree(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_git(tmp_path / "ws")
    take_snapshot(ws, config=cfg)
    write(ws, {"src/shapes.ml": "let v = 1\n"})
    check(ws, cfg)
    store = open_store(ws, cfg)
    store.maintain()  # trees packed: the next change reads them from the cache directory
    store.close()
    write(ws, {"test/test_shapes.ml": "let v = 2\n"})
    check(ws, cfg)  # a miss refilled the cache from git ls-tree
    cache = sqlite3.connect(store.root / "trees.sqlite")
    assert cache.execute("SELECT count(*) FROM trees").fetchone()[0] > 0
    with cache:  # every cached tree damaged
        cache.execute("UPDATE trees SET raw = ?", (b"40000 junk\0" + b"\1" * 20,))
    cache.close()
    write(ws, {"src/shapes.ml": "let v = 3\n", "test/test_shapes.ml": "let v = 4\n"})
    check(ws, cfg)


def test_write_object_and_write_pack_agree_with_git(tmp_path: Path) -> None:
    git_dir = tmp_path / "repo.git"
    init_repo(git_dir)
    env = {**os.environ, "GIT_DIR": str(git_dir)}
    bodies = [b"", b"hello\n", bytes(range(256)) * 50, os.urandom(70_000)]
    for body in bodies[:2]:
        oid = write_object(git_dir, "blob", body)
        src = tmp_path / "f"
        src.write_bytes(body)
        hashed = subprocess.check_output(["git", "hash-object", str(src)], env=env).decode()
        assert oid == hashed.strip()
        assert subprocess.check_output(["git", "cat-file", "blob", oid], env=env) == body
    tree = format_tree({b"a": (b"100644", bytes.fromhex(oid))})
    objects = [("blob", b) for b in bodies[2:]] + [("tree", tree), ("blob", bodies[2])]
    ids = write_pack(git_dir, objects)  # the repeated blob is packed once
    assert ids[-2] == tree_id(tree) and ids[-1] == ids[0]
    for oid, body in zip(ids, bodies[2:], strict=False):
        assert subprocess.check_output(["git", "cat-file", "blob", oid], env=env) == body
    packs = list((git_dir / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1
    redo = tmp_path / "redo.idx"  # git's own index of our pack is byte-for-byte ours
    subprocess.run(["git", "index-pack", "-o", str(redo), str(packs[0])], env=env, check=True)
    assert redo.read_bytes() == packs[0].with_suffix(".idx").read_bytes()
    proc = subprocess.run(["git", "fsck", "--full", "--strict"], env=env, capture_output=True)
    assert proc.returncode == 0, proc.stderr


names = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\0" not in b)
modes = st.sampled_from([b"100644", b"100755", b"120000", TREE_MODE, b"160000"])


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(names, st.tuples(modes, st.binary(min_size=20, max_size=20)), max_size=8))
def test_format_tree_round_trips(entries: dict[bytes, tuple[bytes, bytes]]) -> None:
    assert parse_tree(format_tree(entries)) == entries


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.text("ab.-_", min_size=1, max_size=4)
        .map(str.encode)
        .filter(lambda b: b not in (b".", b"..")),
        st.sampled_from([b"100644", TREE_MODE]),
        min_size=1,
        max_size=6,
    )
)
def test_tree_order_and_id_match_git_mktree(tmp_path_factory, kinds: dict[bytes, bytes]) -> None:  # type: ignore[no-untyped-def]
    git_dir = tmp_path_factory.mktemp("mk") / "repo.git"
    init_repo(git_dir)
    blob = bytes.fromhex(write_object(git_dir, "blob", b"x\n"))
    sub = bytes.fromhex(write_object(git_dir, "tree", format_tree({b"f": (b"100644", blob)})))
    entries = {n: (m, sub if m == TREE_MODE else blob) for n, m in kinds.items()}
    listing = "".join(
        f"{'040000 tree' if m == TREE_MODE else '100644 blob'} {o.hex()}\t{n.decode()}\n"
        for n, (m, o) in entries.items()
    )
    env = {**os.environ, "GIT_DIR": str(git_dir)}
    out = subprocess.run(["git", "mktree"], input=listing.encode(), env=env, capture_output=True)
    assert out.stdout.decode().strip() == tree_id(format_tree(entries))


def test_git_write_tree_cross_checks_after_many_directories(
    tmp_path: Path, cfg: SnapshotConfig, caplog: pytest.LogCaptureFixture
) -> None:
    from bactrian.snapshot.take import CHECK_EVERY_DIRS

    ws = make_git(tmp_path / "ws")
    n = CHECK_EVERY_DIRS // 2 + 5
    write(ws, {f"d{i:03d}/m.ml": "let x = 0\n" for i in range(n)})
    take_snapshot(ws, config=cfg)
    counts = []
    for round_ in (1, 2):
        write(ws, {f"d{i:03d}/m.ml": f"let x = {round_}\n" for i in range(n)})
        snap = take_snapshot(ws, config=cfg)
        store = open_store(ws, cfg)
        counts.append(int(store.db.get_meta("dirs_since_write_tree", "0")))
        assert snap.tree_id == git_tree_of(store) and snap.changed_files == n
        store.close()
    assert counts == [n + 1, 0]  # the second crossed the threshold: git wrote it too
    assert "differs from git write-tree" not in caplog.text  # ... and agreed


def test_killed_after_the_index_update_the_next_snapshot_records_it(
    tmp_path: Path, cfg: SnapshotConfig
) -> None:
    from bactrian.snapshot.take import _stage, _write_in_process, open_for_writing

    ws = make_git(tmp_path / "ws")
    take_snapshot(ws, config=cfg)
    write(ws, {"src/shapes.ml": "let k = 1\n"})
    store = open_for_writing(ws, cfg)
    last = store.last()
    staged = _stage(store, in_process=True)
    assert last is not None and staged.pending is not None
    assert _write_in_process(store, last.tree_id, staged.pending) is not None
    store.close()  # "killed" here: pack and index written; no commit, ref or row
    snap = take_snapshot(ws, config=cfg)  # the index is ahead: git's path
    store = open_store(ws, cfg)
    assert snap.seq == 2 and snap.changed_files == 1
    assert store.read_files(snap, ["src/shapes.ml"]) == {"src/shapes.ml": b"let k = 1\n"}
    assert snap.tree_id == git_tree_of(store) and store.fsck() == []
    store.close()
    write(ws, {"src/shapes.ml": "let k = 2\n"})
    check(ws, cfg)  # and the one after takes the in-process path again
