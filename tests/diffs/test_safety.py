"""Every refusal, and atomicity: a diff applies to all its files or to none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bactrian.diffs import DiffLimits, apply_patch, apply_to_files, check_path, render_diff
from bactrian.errors import DiffApplyError, UnsafeDiffError


def _new_file(path: str, text: str = "x\n") -> str:
    return f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+{text}"


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc/passwd", "absolute"),
        ("../outside.ml", "'..'"),
        ("src/../../outside.ml", "'..'"),
        (".git/config", ".git"),
        ("sub/.git/hooks/pre-commit", ".git"),
        (".GIT/config", ".git"),
        (".hg/hgrc", ".hg"),
        ("C:/Windows/x.ml", "absolute"),
    ],
)
def test_refuses_escaping_and_vcs_paths(tmp_path: Path, path: str, why: str) -> None:
    with pytest.raises(UnsafeDiffError, match="Refusing") as exc:
        apply_patch(tmp_path, _new_file(path))
    assert why.lower() in str(exc.value).lower()
    with pytest.raises(UnsafeDiffError):
        apply_to_files({}, _new_file(path), lenient=True)
    assert list(tmp_path.iterdir()) == []


def test_check_path_normalizes_harmless_forms() -> None:
    assert check_path("./src//a.ml") == "src/a.ml"
    assert check_path("a.git/x.ml") == "a.git/x.ml"  # only a component named .git is refused


def test_refuses_write_through_symlinked_dir_out_of_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link").symlink_to(outside)
    with pytest.raises(UnsafeDiffError, match="symbolic link"):
        apply_patch(tree, _new_file("link/evil.ml"))
    assert list(outside.iterdir()) == []


def test_refuses_patching_symlinked_file_out_of_tree(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("a\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f.txt").symlink_to(outside)
    diff = "--- a/f.txt\n+++ b/f.txt\n@@ -1 +1 @@\n-a\n+b\n"
    with pytest.raises(UnsafeDiffError, match="symbolic link"):
        apply_patch(tree, diff)
    assert outside.read_text() == "a\n"


def test_symlink_inside_tree_into_git_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "meta").symlink_to(tmp_path / ".git")
    with pytest.raises(UnsafeDiffError, match="version-control"):
        apply_patch(tmp_path, _new_file("meta/config"))


def test_symlink_inside_tree_to_inside_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    result = apply_patch(tmp_path, _new_file("alias/a.ml"))
    assert result.ok
    assert (tmp_path / "real/a.ml").read_text() == "x\n"


@pytest.mark.parametrize(
    "diff",
    [
        "diff --git a/i.png b/i.png\nnew file mode 100644\nindex 0000000..1111111\n"
        "GIT binary patch\nliteral 5\nMcmZ?wbhEHb\n\nliteral 0\nHcmV?d00001\n\n",
        "diff --git a/i.png b/i.png\nindex 1111111..2222222 100644\n"
        "Binary files a/i.png and b/i.png differ\n",
        "--- /dev/null\n+++ b/nul.ml\n@@ -0,0 +1 @@\n+a\x00b\n",
        "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n"
        "+/etc/passwd\n\\ No newline at end of file\n",
    ],
    ids=["git-binary-patch", "binary-files-differ", "nul-in-hunk", "symlink-mode"],
)
def test_refuses_binary_and_special_content(tmp_path: Path, diff: str) -> None:
    with pytest.raises(UnsafeDiffError, match="Refusing"):
        apply_patch(tmp_path, diff, lenient=True)
    assert list(tmp_path.iterdir()) == []


def test_refuses_patching_a_binary_file(tmp_path: Path) -> None:
    (tmp_path / "b.dat").write_bytes(b"a\x00b\n")
    with pytest.raises(UnsafeDiffError, match="binary"):
        apply_patch(tmp_path, "--- a/b.dat\n+++ b/b.dat\n@@ -1 +1 @@\n-a\n+b\n", lenient=True)


def test_size_limits(tmp_path: Path) -> None:
    (tmp_path / "big.ml").write_text("x\n" * 600)
    diff = "--- a/big.ml\n+++ b/big.ml\n@@ -1 +1 @@\n-x\n+y\n"
    with pytest.raises(UnsafeDiffError, match="max_file_bytes"):
        apply_patch(tmp_path, diff, limits=DiffLimits(max_file_bytes=1000))
    assert apply_patch(tmp_path, diff, limits=DiffLimits(max_file_bytes=2000)).ok
    grow = render_diff({"s.ml": "a\n"}, {"s.ml": "a\n" + "b\n" * 100})
    with pytest.raises(UnsafeDiffError, match="would be"):
        apply_to_files({"s.ml": "a\n"}, grow, limits=DiffLimits(max_file_bytes=100))
    many = render_diff({}, {f"f{i}.ml": "x\n" for i in range(5)})
    with pytest.raises(UnsafeDiffError, match="max_files"):
        apply_patch(tmp_path, many, limits=DiffLimits(max_files=4))


def test_failed_second_file_leaves_first_untouched(tmp_path: Path) -> None:
    (tmp_path / "a.ml").write_text("let a = 1\n")
    (tmp_path / "b.ml").write_text("let b = 2\n")
    diff = (
        "--- a/a.ml\n+++ b/a.ml\n@@ -1 +1 @@\n-let a = 1\n+let a = 10\n"
        "--- a/b.ml\n+++ b/b.ml\n@@ -1 +1 @@\n-let b = 999\n+let b = 20\n"
    )
    for lenient in (False, True):
        result = apply_patch(tmp_path, diff, lenient=lenient)
        assert not result.ok
        assert [f.status for f in result.files] == ["modified", "failed"]
        assert result.changed_paths == []
        assert (tmp_path / "a.ml").read_text() == "let a = 1\n"
        with pytest.raises(DiffApplyError, match="nothing was written"):
            result.raise_for_status()


def test_write_failure_midway_restores_what_was_written(tmp_path: Path) -> None:
    (tmp_path / "a.ml").write_text("let a = 1\n")
    (tmp_path / "blocker").write_text("a regular file where a directory must go\n")
    (tmp_path / "z.ml").write_text("gone\n")
    before = _tree(tmp_path)
    diff = (
        "--- a/a.ml\n+++ b/a.ml\n@@ -1 +1 @@\n-let a = 1\n+let a = 10\n"
        + "--- /dev/null\n+++ b/new/dir/n.ml\n@@ -0,0 +1 @@\n+new\n"
        + "--- /dev/null\n+++ b/blocker/x.ml\n@@ -0,0 +1 @@\n+x\n"
        + "--- a/z.ml\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n"
    )
    assert apply_patch(tmp_path, diff, dry_run=True).ok  # in memory it is fine
    with pytest.raises(DiffApplyError, match="restored"):
        apply_patch(tmp_path, diff)
    assert _tree(tmp_path) == before
    assert not (tmp_path / "new").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bactrian-")]


def test_dry_run_writes_nothing_and_git_dir_is_untouched(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "a.ml").write_text("let a = 1\n")
    before = _tree(tmp_path)
    diff = render_diff({"a.ml": "let a = 1\n"}, {"a.ml": "let a = 2\n", "b.ml": "b\n"})
    result = apply_patch(tmp_path, diff, dry_run=True)
    assert result.ok and result.dry_run and result.changed_paths == ["a.ml", "b.ml"]
    assert _tree(tmp_path) == before
    apply_patch(tmp_path, diff)
    assert (tmp_path / ".git/HEAD").read_text() == "ref: refs/heads/main\n"


def test_modes_are_written(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("echo\n")
    os.chmod(tmp_path / "run.sh", 0o644)
    diff = (
        "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
        "diff --git a/tool b/tool\nnew file mode 100755\n--- /dev/null\n+++ b/tool\n"
        "@@ -0,0 +1 @@\n+#!/bin/sh\n"
    )
    assert apply_patch(tmp_path, diff).ok
    assert os.access(tmp_path / "run.sh", os.X_OK)
    assert os.access(tmp_path / "tool", os.X_OK)


def test_deleting_last_file_removes_empty_dirs_and_existing_new_file_fails(tmp_path: Path) -> None:
    (tmp_path / "d/e").mkdir(parents=True)
    (tmp_path / "d/e/f.ml").write_text("x\n")
    assert apply_patch(tmp_path, "--- a/d/e/f.ml\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n").ok
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "n.ml").write_text("already\n")
    result = apply_patch(tmp_path, _new_file("n.ml"))
    assert not result.ok and "already exists" in (result.files[0].error or "")


def test_new_file_diff_for_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "n.ml").write_text("let n = 1\n")
    same = _new_file("n.ml", "let n = 1\n")
    other = _new_file("n.ml", "let n = 2\n")
    assert not apply_patch(tmp_path, same).ok  # strict: it exists
    result = apply_patch(tmp_path, same, lenient=True)  # leniently: already there, a no-op
    assert result.ok and result.changed_paths == []
    assert not apply_patch(tmp_path, other, lenient=True).ok  # never prepended or overwritten
    assert (tmp_path / "n.ml").read_text() == "let n = 1\n"


def test_strict_refuses_bare_hunks_even_for_new_content() -> None:
    bare_new = "--- /dev/null\n+++ b/n.ml\n@@\n+let n = 1\n"
    assert not apply_to_files({}, bare_new)[1].ok
    out, result = apply_to_files({}, bare_new, lenient=True)
    assert result.ok and result.rungs() == {"recount": 1} and out == {"n.ml": b"let n = 1\n"}


def test_a_file_can_become_a_directory(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x\n")
    diff = render_diff({"a": "x\n"}, {"a/b.ml": "y\n"})
    result = apply_patch(tmp_path, diff)
    assert result.ok, result.summary()
    assert (tmp_path / "a/b.ml").read_text() == "y\n"
