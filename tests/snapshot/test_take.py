"""take_snapshot on real git, Mercurial and plain workspaces."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bactrian.errors import WorkspaceError
from bactrian.snapshot import SnapshotConfig, open_store, take_snapshot
from bactrian.types import BuildResult, BuildState

from .conftest import SOURCES as SOURCES_FILES
from .conftest import make_git, make_hg, make_plain, sh, tree_digest, write


class CountingProbe:
    """A real probe: runs ``sh -c`` in the workspace and counts its runs."""

    name = "counting"

    def __init__(self, script: str = "test -f src/shapes.ml") -> None:
        self.script = script
        self.runs: list[str | None] = []

    def run(self, workspace: Path, tree_id: str | None = None) -> BuildResult:
        import subprocess

        self.runs.append(tree_id)
        proc = subprocess.run(["sh", "-c", self.script], cwd=workspace, capture_output=True)
        state = BuildState.GREEN if proc.returncode == 0 else BuildState.RED
        return BuildResult(
            state, 0.01, log=proc.stdout.decode(), exit_code=proc.returncode, probe=self.name
        )


@pytest.mark.parametrize("make", [make_plain, make_git, make_hg], ids=["plain", "git", "hg"])
def test_timeline_records_changes_and_leaves_workspace_untouched(
    tmp_path: Path, cfg: SnapshotConfig, make
) -> None:
    ws = make(tmp_path / "ws")
    before = tree_digest(ws)
    probe = CountingProbe()

    s1 = take_snapshot(ws, config=cfg, probe=probe, now=1000.0)
    assert (s1.seq, s1.parent, s1.time) == (1, None, 1000.0)
    assert s1.build.state is BuildState.GREEN
    # unchanged tree: nothing new, no build
    again = take_snapshot(ws, config=cfg, probe=probe)
    assert again.id == s1.id and len(probe.runs) == 1

    (ws / "src" / "shapes.ml").unlink()
    write(ws, {"src/extra.ml": "let x = 1\n"})
    s2 = take_snapshot(ws, config=cfg, probe=probe, now=1020.0)
    assert (s2.seq, s2.parent, s2.changed_files) == (2, s1.id, 2)
    assert s2.build.state is BuildState.RED and len(probe.runs) == 2
    assert probe.runs[-1] == s2.tree_id

    store = open_store(ws, cfg)
    assert [s.seq for s in store.timeline()] == [1, 2]
    files = store.file_list(s2)
    assert "src/extra.ml" in files and "src/shapes.ml" not in files
    assert not any(f.startswith((".git/", ".hg/")) for f in files)
    assert store.fsck() == []
    after = tree_digest(ws)
    expected = {k: v for k, v in before.items() if k != "src/shapes.ml"}
    expected["src/extra.ml"] = after["src/extra.ml"]
    assert after == expected  # only the user's own edits; nothing written by bactrian


def test_workspace_and_vcs_state_byte_for_byte_unchanged(
    tmp_path: Path, cfg: SnapshotConfig
) -> None:
    ws = make_git(tmp_path / "ws")
    write(ws, {"src/wip.ml": "let wip = ()\n", "notes.log": "x\n"})
    (ws / "src" / "shapes.ml").write_text("let changed = 1\n")
    sh(["git", "add", "src/wip.ml"], ws)  # a staged change in the user's index
    before = tree_digest(ws)
    for i in range(3):
        write(tmp_path, {f"other{i}": "x"})  # nothing in ws changes
        take_snapshot(ws, config=cfg)
    assert tree_digest(ws) == before
    assert sh(["git", "status", "--porcelain"], ws) == " M src/shapes.ml\nA  src/wip.ml\n"


def test_hg_workspace_dirstate_untouched(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_hg(tmp_path / "ws")
    write(ws, {"src/new.ml": "let n = 1\n"})
    before = tree_digest(ws)
    snap = take_snapshot(ws, config=cfg)
    assert tree_digest(ws) == before
    assert "src/new.ml" in open_store(ws, cfg).file_list(snap)
    assert sh(["hg", "status"], ws) == "? src/new.ml\n"


def test_ignore_rules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ws = make_git(tmp_path / "ws")
    write(
        ws,
        {
            ".hgignore": "syntax: glob\n*.tmp\nsyntax: regexp\n^generated/\n[0-9]+\\.out$\n",
            "_build/default/x.ml": "built\n",
            "node_modules/a.js": "x\n",
            "run.log": "ignored by .gitignore\n",
            "a.tmp": "hg glob\n",
            "generated/g.ml": "hg regexp\n",
            "sub/42.out": "hg regexp leftover\n",
            "sub/ok.out": "kept\n",
            ".env": "TOKEN=1\n",
            "keys/id_rsa": "-----BEGIN\n",
            "certs/server.pem": "x\n",
            "image.png": b"\x89PNG\r\n\x1a\n\x00\x00binary",
            "big.ml": "x" * 2000,
            "small.ml": "y" * 100,
        },
    )
    config = SnapshotConfig(probe="none", store_dir=tmp_path / "store", max_file_bytes=1000)
    with caplog.at_level(logging.WARNING):
        snap = take_snapshot(ws, config=config)
    files = set(open_store(ws, config).file_list(snap))
    assert {"small.ml", "sub/ok.out", "src/shapes.ml", ".gitignore", ".hgignore"} <= files
    for skipped in [
        "_build/default/x.ml",
        "node_modules/a.js",
        "run.log",
        "a.tmp",
        "generated/g.ml",
        "sub/42.out",
        ".env",
        "keys/id_rsa",
        "certs/server.pem",
        "image.png",
        "big.ml",
    ]:
        assert skipped not in files, skipped
    assert "image.png: binary file" in caplog.text
    assert "big.ml: larger than max_file_bytes" in caplog.text
    # skipped files are remembered: no second log line while they stay as they are
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        write(ws, {"small.ml": "z\n"})
        take_snapshot(ws, config=config)
    assert "image.png" not in caplog.text

    # configurable: a larger limit and an extra ignore pattern
    config2 = SnapshotConfig(
        probe="none", store_dir=tmp_path / "store", max_file_bytes=10_000, ignore=["small.ml"]
    )
    snap3 = take_snapshot(ws, config=config2)
    files3 = set(open_store(ws, config2).file_list(snap3))
    assert "big.ml" in files3 and "small.ml" not in files3
    assert "_build/default/x.ml" in files3  # the default ignore list was replaced


def test_newly_gitignored_file_leaves_the_snapshot(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_git(tmp_path / "ws")
    write(ws, {"out.txt": "generated\n"})
    s1 = take_snapshot(ws, config=cfg)
    assert "out.txt" in open_store(ws, cfg).file_list(s1)
    write(ws, {".gitignore": "*.log\nout.txt\n"})
    s2 = take_snapshot(ws, config=cfg)
    assert "out.txt" not in open_store(ws, cfg).file_list(s2)


def test_real_command_probe_from_config(tmp_path: Path) -> None:
    ws = make_plain(tmp_path / "ws")
    config = SnapshotConfig(
        store_dir=tmp_path / "store",
        build_cmd="echo 'File \"src/a.ml\", line 1, characters 0-3:\nError: Unbound value foo'; exit 1",
    )
    snap = take_snapshot(ws, config=config)
    assert snap.build.state is BuildState.RED
    assert snap.build.probe == "command"


def test_store_inside_workspace_is_refused(tmp_path: Path) -> None:
    ws = make_plain(tmp_path / "ws")
    with pytest.raises(WorkspaceError, match="inside the workspace"):
        take_snapshot(ws, config=SnapshotConfig(probe="none", store_dir=ws / ".store"))
    assert not (ws / ".store").exists()


def test_missing_workspace(tmp_path: Path, cfg: SnapshotConfig) -> None:
    with pytest.raises(WorkspaceError, match="does not exist"):
        take_snapshot(tmp_path / "nope", config=cfg)


def test_default_store_location_is_data_dir(tmp_path: Path) -> None:
    ws = make_plain(tmp_path / "ws")
    take_snapshot(ws, config=SnapshotConfig(probe="none"))
    assert list((Path(os.environ["BACTRIAN_DATA_DIR"]) / "snapshots").glob("ws-*/repo.git"))


def test_changed_files_counts_content_changes_only(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_git(tmp_path / "ws")
    s1 = take_snapshot(ws, config=cfg)
    shapes = ws / "src" / "shapes.mli"
    os.utime(shapes, ns=(1, 1))  # touched, same content
    write(ws, {"src/shapes.ml": "let changed = 1\n", "src/added.ml": "let a = 1\n"})
    (ws / "test" / "test_shapes.ml").unlink()
    s2 = take_snapshot(ws, config=cfg)
    store = open_store(ws, cfg)
    assert sorted(store.changed_paths(s1, s2)) == [
        "src/added.ml",
        "src/shapes.ml",
        "test/test_shapes.ml",
    ]
    assert s2.changed_files == 3 == store.get(2).changed_files
    os.utime(shapes, ns=(2, 2))  # only a touch: no new snapshot
    assert take_snapshot(ws, config=cfg).seq == 2


def test_bytes_recorded_as_they_are_despite_gitattributes(
    tmp_path: Path, cfg: SnapshotConfig
) -> None:
    ws = make_git(tmp_path / "ws")
    write(
        ws,
        {
            ".gitattributes": "* text=auto eol=lf\n*.ml ident filter=lfs\n",
            "crlf.ml": b"let a = 1\r\nlet b = 2\r\n(* $Id$ *)\r\n",
        },
    )
    snap = take_snapshot(ws, config=cfg)
    got = open_store(ws, cfg).read_files(snap, ["crlf.ml"])
    assert got == {"crlf.ml": (ws / "crlf.ml").read_bytes()}


def test_file_becomes_directory_and_back(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_plain(tmp_path / "ws")
    write(ws, {"thing": "a file\n", "dir/a.ml": "let a = 1\n"})
    take_snapshot(ws, config=cfg)
    (ws / "thing").unlink()
    write(ws, {"thing/inner.ml": "now a directory\n"})
    import shutil

    shutil.rmtree(ws / "dir")
    write(ws, {"dir": "now a file\n"})
    s2 = take_snapshot(ws, config=cfg)
    files = open_store(ws, cfg).read_files(s2)
    assert files["thing/inner.ml"] == b"now a directory\n" and "thing" not in files
    assert files["dir"] == b"now a file\n" and "dir/a.ml" not in files
    assert s2.changed_files == 4


def test_odd_workspace_name(tmp_path: Path, cfg: SnapshotConfig) -> None:
    ws = make_plain(tmp_path / "my wörk space (1)")
    snap = take_snapshot(ws, config=cfg)
    assert snap.workspace == str(ws.resolve())
    assert "src/shapes.ml" in open_store(ws, cfg).file_list(snap)


def test_concurrent_takes_keep_one_timeline(tmp_path: Path, cfg: SnapshotConfig) -> None:
    import threading

    ws = make_plain(tmp_path / "ws")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                write(ws, {f"w{n}/f{i}.ml": f"let v = {i}\n"})
                take_snapshot(ws, config=cfg)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = open_store(ws, cfg)
    snaps = store.timeline()
    assert [s.seq for s in snaps] == list(range(1, len(snaps) + 1))
    assert all(b.parent == a.id for a, b in zip(snaps, snaps[1:], strict=False))
    assert len(store.file_list(snaps[-1])) == len(SOURCES_FILES) + 15
    assert store.fsck() == []


def test_skipped_files_alone_cost_no_tree_write(
    tmp_path: Path, cfg: SnapshotConfig, caplog: pytest.LogCaptureFixture
) -> None:
    from bactrian.snapshot import gitrepo

    ws = make_plain(tmp_path / "ws")
    write(ws, {"logo.png": b"\x89PNG\x00\x01"})
    first = take_snapshot(ws, config=cfg)
    calls: list[str] = []
    orig = gitrepo.GitRepo.run

    def counting(self, *args, **kw):  # type: ignore[no-untyped-def]
        calls.append(args[0])
        return orig(self, *args, **kw)

    gitrepo.GitRepo.run = counting  # type: ignore[method-assign]
    try:
        again = take_snapshot(ws, config=cfg)
    finally:
        gitrepo.GitRepo.run = orig  # type: ignore[method-assign]
    assert again.id == first.id
    assert calls == ["status"]  # one git process for an unchanged tree
