"""The in-process object reader agrees with git: listings equal ``git ls-tree -r``, changes
equal ``git diff-tree -r --name-only``, and a diff rendered from the changed files turns one
tree into the other under ``git apply`` (hypothesis over random trees, real git)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bactrian.errors import StoreError
from bactrian.mine.textdiff import render
from bactrian.snapshot.reader import ObjectReader, parse_tree


def _git(git_dir: Path, *args: str, cwd: Path | None = None, input: bytes | None = None) -> bytes:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_DIR=str(git_dir), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    if cwd is not None:
        env.update(GIT_WORK_TREE=str(cwd), GIT_INDEX_FILE=str(cwd.parent / (cwd.name + ".idx")))
    proc = subprocess.run(
        ["git", *args], cwd=cwd or git_dir, env=env, input=input, capture_output=True, check=True
    )
    return proc.stdout


def _repo(root: Path) -> Path:
    git_dir = root / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    return git_dir


def _write_tree(git_dir: Path, work: Path, files: dict[str, tuple[bytes, bool]]) -> str:
    work.mkdir(parents=True)
    for path, (data, exe) in files.items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if exe:
            target.chmod(0o755)
    _git(git_dir, "add", "-A", ".", cwd=work)
    return _git(git_dir, "write-tree", cwd=work).decode().strip()


NAMES = st.sampled_from(["a", "b", "a.ml", "b.mli", "a-b", "z"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
CONTENT = st.sampled_from([b"", b"x\n", b"let x = 1\n", b"let x = 2\nlet y = 3\n", b"no eol"])
FILES = st.dictionaries(PATHS, st.tuples(CONTENT, st.booleans()), max_size=8)


def _consistent(files: dict[str, tuple[bytes, bool]]) -> dict[str, tuple[bytes, bool]]:
    """Drop paths that are also a directory of another path (a file cannot be both)."""
    dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
    return {p: v for p, v in files.items() if p not in dirs}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(FILES, FILES, st.data())
def test_reader_agrees_with_git_on_random_trees(
    tmp_path_factory: pytest.TempPathFactory,
    one: dict[str, tuple[bytes, bool]],
    extra: dict[str, tuple[bytes, bool]],
    data: st.DataObject,
) -> None:
    root = tmp_path_factory.mktemp("trees")
    git_dir = _repo(root)
    one = _consistent(one)
    two: dict[
        str, tuple[bytes, bool]
    ] = {}  # an edit of one: kept, content changed, mode toggled, deleted; plus new paths
    for path, (content, exe) in one.items():
        op = data.draw(st.sampled_from(["keep", "content", "mode", "delete"]))
        if op == "keep":
            two[path] = (content, exe)
        elif op == "content":
            two[path] = (content + b"changed\n", exe)
        elif op == "mode":
            two[path] = (content, not exe)
    two = _consistent({**extra, **two})
    a = _write_tree(git_dir, root / "a", one)
    b = _write_tree(git_dir, root / "b", two)
    reader = ObjectReader(git_dir)
    try:
        for tree, files in ((a, one), (b, two)):
            listing = _git(git_dir, "ls-tree", "-r", "-z", tree).split(b"\0")
            want = {}
            for rec in filter(None, listing):
                meta, _, raw_path = rec.partition(b"\t")
                mode, _, oid = meta.decode().split()
                want[raw_path.decode()] = (mode, oid)
            assert reader.entries(tree) == want
            dirs = {p.rsplit("/", 1)[0] for p in files if "/" in p}
            fresh = ObjectReader(git_dir)  # no cached listing: lookup walks the trees
            try:
                assert fresh.lookup(tree, [*files, *dirs, "nope.ml", "a/zz/q"]) == want
            finally:
                fresh.close()
            assert set(want) == set(files)
        want_changed = _git(git_dir, "diff-tree", "-r", "-z", "--no-renames", "--name-only", a, b)
        changed = reader.changed(a, b)
        assert changed == sorted(p.decode() for p in want_changed.split(b"\0") if p)
        assert reader.changed(None, b) == sorted(two)
        assert reader.changed(a, a) == []

        # a diff rendered from the changed files' contents turns tree a into tree b's contents
        ea, eb = reader.entries(a), reader.entries(b)
        blobs = reader.blobs(
            {ea[p][1] for p in changed if p in ea} | {eb[p][1] for p in changed if p in eb}
        )
        old = {p: blobs[ea[p][1]] for p in changed if p in ea}
        new = {p: blobs[eb[p][1]] for p in changed if p in eb}
        patch = render(old, new, changed)
        if patch:
            subprocess.run(
                ["git", "apply", "--whitespace=nowarn", "-"],
                cwd=root / "a",
                input=patch.encode(),
                check=True,
                capture_output=True,
                env={**os.environ, "GIT_CEILING_DIRECTORIES": str(root)},
            )
        got = {
            str(p.relative_to(root / "a")): p.read_bytes()
            for p in (root / "a").rglob("*")
            if p.is_file()
        }
        assert got == {p: data for p, (data, _) in two.items()}
    finally:
        reader.close()


def test_parse_tree_reads_modes_names_and_ids(tmp_path: Path) -> None:
    git_dir = _repo(tmp_path)
    tree = _write_tree(git_dir, tmp_path / "w", {"x.ml": (b"1\n", False), "d/run": (b"2\n", True)})
    raw = _git(git_dir, "cat-file", "tree", tree)
    parsed = parse_tree(raw)
    assert set(parsed) == {"x.ml", "d"}
    assert parsed["d"][0] == "40000"
    sub = parse_tree(_git(git_dir, "cat-file", "tree", parsed["d"][1]))
    assert sub["run"][0] == "100755"
    assert _git(git_dir, "cat-file", "blob", parsed["x.ml"][1]) == b"1\n"


def test_reader_caches_survive_repack_and_report_missing_objects(tmp_path: Path) -> None:
    git_dir = _repo(tmp_path)
    first = _write_tree(git_dir, tmp_path / "w1", {"src/a.ml": (b"a\n", False)})
    reader = ObjectReader(git_dir)
    assert list(reader.entries(first)) == ["src/a.ml"]
    assert reader.requests == 0 and reader.loose_reads == 2  # loose: read without git
    before = reader.requests
    assert list(reader.entries(first)) == ["src/a.ml"]
    assert reader.changed(first, first) == []
    assert (reader.requests, reader.loose_reads) == (before, 2)  # cached: nothing read
    # objects written and packed after the process started are still found
    second = _write_tree(git_dir, tmp_path / "w2", {"src/a.ml": (b"b\n", False)})
    every = _git(git_dir, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    _git(git_dir, "pack-objects", "-q", str(git_dir / "objects/pack/pack"), input=every)
    _git(git_dir, "prune-packed")  # (the trees are in no commit: `repack -a` would skip them)
    assert reader.changed(first, second) == ["src/a.ml"]
    assert reader.requests > before  # packed objects come from git cat-file
    oid = reader.entries(second)["src/a.ml"][1]
    assert reader.blobs([oid]) == {oid: b"b\n"}
    with pytest.raises(StoreError, match="missing"):
        reader.blobs(["0" * 40])
    proc = reader._proc
    reader.close()
    assert proc is not None and proc.poll() is not None
    assert reader.blobs([oid]) == {oid: b"b\n"}  # cached; the process restarts when needed
    reader.close()


def _read_in_child(git_dir: str, oid: str, queue: Any) -> None:
    reader = _SHARED[git_dir]
    data = reader.objects([oid])[oid][1]
    queue.put((data, reader._proc.pid if reader._proc else None))


_SHARED: dict[str, ObjectReader] = {}


def test_a_forked_child_starts_its_own_git_process(tmp_path: Path) -> None:
    import multiprocessing

    git_dir = _repo(tmp_path)
    tree = _write_tree(git_dir, tmp_path / "w", {"a.ml": (b"a\n", False)})
    every = _git(git_dir, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    _git(git_dir, "pack-objects", "-q", str(git_dir / "objects/pack/pack"), input=every)
    _git(git_dir, "prune-packed")
    reader = ObjectReader(git_dir)
    _SHARED[str(git_dir)] = reader
    try:
        oid = reader.entries(tree)["a.ml"][1]
        assert reader.requests == 1  # the parent's process is running
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_read_in_child, args=(str(git_dir), oid, queue))
        child.start()
        assert reader._proc is not None
        data, pid = queue.get(timeout=30)
        assert data == b"a\n"
        assert pid is not None and pid != reader._proc.pid  # its own cat-file, not the pipe
        child.join(30)
        assert child.exitcode == 0
        assert reader.blobs([oid]) == {oid: b"a\n"}  # the parent's pipe is intact
        assert reader.objects([tree])[tree][0] == "tree"
    finally:
        _SHARED.clear()
        reader.close()
