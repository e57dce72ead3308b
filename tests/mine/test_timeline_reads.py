"""The miner's batched read path (lazy timeline rows, prefetched trees and files, chunks of
episodes) gives exactly what the plain per-episode path gives, and its diffs apply with
``git apply`` to the base snapshot to give the end snapshot's files. Real snapshot store, real
git; the build states come from a scripted probe."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bactrian.mine import timeline
from bactrian.mine.config import MineConfig
from bactrian.mine.timeline import mine_store
from bactrian.snapshot import Store, open_store, take_snapshot
from bactrian.types import BuildResult, BuildState, Diagnostic, Severity


class ScriptedProbe:
    name = "scripted"

    def __init__(self) -> None:
        self.next = BuildResult(BuildState.GREEN, 0.1)

    def run(self, workspace: Path, tree_id: str | None = None) -> BuildResult:
        return self.next


class PlainStore:
    """Only the TimelineStore protocol: no timeline_rows, no prefetch (the unbatched path)."""

    def __init__(self, store: Store) -> None:
        self._s = store
        self.workspace, self.root = store.workspace, store.root

    def timeline(self) -> Any:
        return self._s.timeline()

    def file_list(self, snap: Any) -> list[str]:
        return self._s.file_list(snap)

    def read_files(self, snap: Any, paths: Any = None) -> dict[str, bytes]:
        return self._s.read_files(snap, paths)

    def changed_paths(self, a: Any, b: Any) -> list[str]:
        return self._s.changed_paths(a, b)


def _record(ws: Path, probe: ScriptedProbe, files: dict[str, str], red: str | None, t: float):
    for rel, text in files.items():
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    if red is None:
        probe.next = BuildResult(BuildState.GREEN, 0.1)
    else:
        diag = Diagnostic(red, 1, 0, 1, 3, Severity.ERROR, "Unbound value x", "type")
        probe.next = BuildResult(BuildState.RED, 0.1, diagnostics=[diag])
    take_snapshot(ws, probe=probe, now=t)


@pytest.fixture
def timeline_ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    probe = ScriptedProbe()
    base = {
        "dune-project": "(lang dune 2.9)\n",
        "src/a.ml": "let a = 1\n",
        "src/a.mli": "val a : int\n",
        "src/b.ml": "let b = 2\n",
        "test/test_a.ml": "let () = assert (A.a = 1)\n",
        "lib/deep/c.ml": "let c = 3\n",
    }
    t = 1_700_000_000.0
    _record(ws, probe, base, None, t)
    for k in range(6):  # six valleys, each touching a different place
        target = ["src/a.ml", "src/b.ml", "lib/deep/c.ml"][k % 3]
        text = (ws / target).read_text()
        _record(ws, probe, {target: text + f"let x{k} = y{k}\n"}, target, t + 100 * k + 10)
        _record(ws, probe, {"src/new.ml": f"(* {k} *)\n"}, target, t + 100 * k + 20)
        _record(ws, probe, {target: text + f"let x{k} = {k}\n"}, None, t + 100 * k + 30)
        if k == 4:  # a file replaced by a directory between valleys
            (ws / "src/b.ml").unlink()
            _record(ws, probe, {"src/b.ml/inner.ml": "let i = 0\n"}, None, t + 100 * k + 40)
    return ws


def test_batched_mining_equals_the_plain_path_and_diffs_apply(
    timeline_ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timeline, "CHUNK", 4)  # several chunks
    store, other = open_store(timeline_ws), open_store(timeline_ws)
    try:
        batched, skipped = mine_store(store, MineConfig())
        plain, skipped_plain = mine_store(PlainStore(other), MineConfig())
    finally:
        store.close()
        other.close()
    assert [e.to_dict() for e in batched] == [e.to_dict() for e in plain]
    assert skipped == skipped_plain
    assert {e.kind for e in batched} == {"fix", "change"} and len(batched) >= 10

    store = open_store(timeline_ws)
    try:
        for i, ex in enumerate(batched):
            base = store.get(ex.base["seq"])
            end = store.get(ex.stats["end_seq"])
            dest = tmp_path / f"apply{i}"
            store.materialize(base, dest)
            subprocess.run(
                ["git", "apply", "--whitespace=nowarn", "-"],
                cwd=dest,
                input=ex.diff.encode(),
                check=True,
                capture_output=True,
                env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)},
            )
            got = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
            assert got == store.read_files(end)
            # context only from the base snapshot (no future leaks)
            assert {p: t.encode() for p, t in ex.files.items()} == store.read_files(
                base, list(ex.files)
            )
    finally:
        store.close()


def test_timeline_rows_decode_lazily_and_equal_the_full_timeline(timeline_ws: Path) -> None:
    store = open_store(timeline_ws)
    try:
        full = store.timeline()
        rows = store.timeline_rows()
        assert [r.state for r in rows] == [s.build.state for s in full]
        assert all(r._build is None for r in rows)
        assert [r.snapshot() for r in rows] == full
        assert rows[1].build.diagnostics[0].message == "Unbound value x"
    finally:
        store.close()


def test_prefetched_reads_need_no_further_round_trip(timeline_ws: Path) -> None:
    store = open_store(timeline_ws)
    try:
        rows = store.timeline_rows()
        subprocess.run(  # pack everything: reads then go through git cat-file
            ["git", "--git-dir", str(store.git_dir), "repack", "-a", "-d", "-q"], check=True
        )
        subprocess.run(["git", "--git-dir", str(store.git_dir), "prune-packed"], check=True)
        store.prefetch_trees(rows)
        store.prefetch_files([(r, store.file_list(r)) for r in rows])
        assert store.reader.requests > 0
        before = store.reader.requests
        for a, b in zip(rows, rows[1:], strict=False):
            paths = store.changed_paths(a, b)
            assert store.read_files(a, paths + ["missing.ml"]).keys() <= set(paths)
            store.read_files(b, paths)
        assert store.reader.requests == before
    finally:
        store.close()
