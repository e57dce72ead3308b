"""Tree hashing and reset: any change to a tree's sources is undone and detected."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bactrian.ces import tree
from bactrian.ces.contract import BaseSpec
from bactrian.errors import CESError

names = st.sampled_from(["a.ml", "b.mli", "dune", "sub/c.ml", "sub/deep/d.ml", "new.ml", "x"])
ops = st.lists(
    st.tuples(
        st.sampled_from(["write", "delete", "chmod", "mkdir", "symlink"]),
        names,
        st.binary(max_size=20),
    ),
    max_size=8,
)


def _base(root: Path) -> None:
    for rel, text in {
        "a.ml": "let a = 1\n",
        "b.mli": "val b : int\n",
        "dune": "()\n",
        "sub/c.ml": "c\n",
    }.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (root / "_build").mkdir()
    (root / "_build" / "log").write_text("kept\n")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops)
def test_restore_undoes_any_change(tmp_path: Path, ops: list[tuple[str, str, bytes]]) -> None:
    work = tmp_path / "w"
    shutil.rmtree(work, ignore_errors=True)
    snap = tmp_path / "snap"
    shutil.rmtree(snap, ignore_errors=True)
    _base(work)
    tree.copy_tree(work, snap)
    want = tree.manifest(work)
    h = tree.tree_hash(want)
    for op, rel, data in ops:
        p = work / rel
        try:
            if op == "write":
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
            elif op == "delete":
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
            elif op == "chmod" and p.is_file():
                os.chmod(p, 0o755)
            elif op == "mkdir":
                p.mkdir(parents=True, exist_ok=True)
            elif op == "symlink":
                p.parent.mkdir(parents=True, exist_ok=True)
                os.symlink("/etc/passwd", p)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            pass
    changed = tree.manifest(work) != want
    assert (tree.tree_hash(tree.manifest(work)) != h) == changed
    tree.restore(work, snap, want)
    assert tree.tree_hash(tree.manifest(work)) == h
    assert (work / "_build" / "log").read_text() == "kept\n"  # the build dir is not touched


def test_hash_sees_content_mode_and_links(tmp_path: Path) -> None:
    _base(tmp_path)
    h0 = tree.tree_hash(tree.manifest(tmp_path))
    (tmp_path / "_build" / "other").write_text("ignored")
    assert tree.tree_hash(tree.manifest(tmp_path)) == h0
    os.chmod(tmp_path / "a.ml", 0o755)
    h1 = tree.tree_hash(tree.manifest(tmp_path))
    assert h1 != h0
    os.symlink("a.ml", tmp_path / "l")
    assert tree.tree_hash(tree.manifest(tmp_path)) not in (h0, h1)


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def test_git_base_exports_a_revision_without_touching_the_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.ml").write_text("let a = 1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    first = _git(repo, "rev-parse", "HEAD").strip()
    (repo / "a.ml").write_text("let a = 2\n")
    _git(repo, "commit", "-qam", "two")
    (repo / "a.ml").write_text("let a = 3 (* uncommitted *)\n")
    status_before = _git(repo, "status", "--porcelain")
    spec = tree.resolve(BaseSpec(str(repo), rev="HEAD~1"))
    assert spec.vcs == "git" and spec.resolved_rev == first
    tree.export(spec, tmp_path / "out")
    assert (tmp_path / "out" / "a.ml").read_text() == "let a = 1\n"
    assert not (tmp_path / "out" / ".git").exists()
    assert _git(repo, "status", "--porcelain") == status_before
    assert (repo / "a.ml").read_text() == "let a = 3 (* uncommitted *)\n"
    # the key follows the resolved commit, not the symbolic name
    assert spec.key() == tree.resolve(BaseSpec(str(repo), rev=first)).key()
    with pytest.raises(CESError, match="rev-parse"):
        tree.resolve(BaseSpec(str(repo), rev="no-such-rev"))


def test_hg_base_exports_a_revision(tmp_path: Path) -> None:
    repo = tmp_path / "hgrepo"
    repo.mkdir()
    hg = ["hg", "--config", "ui.username=t <t@t>", "-R", str(repo)]
    subprocess.run(["hg", "init", str(repo)], check=True)
    (repo / "a.ml").write_text("let a = 1\n")
    subprocess.run([*hg, "commit", "-qAm", "one"], check=True)
    (repo / "a.ml").write_text("let a = 2\n")
    subprocess.run([*hg, "commit", "-qm", "two"], check=True)
    spec = tree.resolve(BaseSpec(str(repo), rev="0"))
    assert spec.vcs == "hg" and spec.resolved_rev and len(spec.resolved_rev) == 40
    tree.export(spec, tmp_path / "out")
    assert (tmp_path / "out" / "a.ml").read_text() == "let a = 1\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.ml"]


def test_directory_base_key_follows_its_content(tmp_path: Path) -> None:
    _base(tmp_path)
    k1 = tree.resolve(BaseSpec(str(tmp_path))).key()
    (tmp_path / "a.ml").write_text("let a = 2\n")
    assert tree.resolve(BaseSpec(str(tmp_path))).key() != k1
