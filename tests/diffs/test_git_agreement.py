"""Agreement with real ``git apply`` on diffs taken from a real repository's history: several
commits with edits, new files, deletions, pure renames, renames with edits, mode changes,
files without a trailing newline, CRLF files and unusual names."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bactrian.diffs import apply_patch, apply_to_files, parse_patch, render_tree_diff

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(repo: Path, *args: str) -> str:
    run = subprocess.run(
        ["git", "-c", "core.autocrlf=false", *args],
        cwd=repo,
        env=ENV,
        capture_output=True,
        check=True,
    )
    return run.stdout.decode("utf-8")  # no newline translation: CRLF content must survive


def _commit(repo: Path, msg: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", msg)


def _ocaml(n: int, tag: str) -> str:
    return "".join(f"let {tag}{i} x = x + {i}\n" for i in range(n))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("hist")
    git(repo, "init", "-q")
    (repo / "src").mkdir()
    (repo / "src/a.ml").write_text(_ocaml(30, "a"))
    (repo / "src/a.mli").write_text("val a0 : int -> int\n")
    (repo / "src/b.ml").write_text(_ocaml(12, "b"))
    (repo / "src/keep.ml").write_text(_ocaml(25, "k"))
    (repo / "notes.txt").write_bytes(b"line one\r\nline two\r\nline three\r\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (repo / "with space.ml").write_text("let s = 1\n")
    _commit(repo, "base")
    # 2: edits in two hunks, a new file, no trailing newline
    a = (repo / "src/a.ml").read_text().splitlines(keepends=True)
    a[2] = "let a2 x = x * 2\n"
    a.insert(20, "let extra = 42\n")
    (repo / "src/a.ml").write_text("".join(a))
    (repo / "src/c.ml").write_text("let c = B.b0 1")
    (repo / "with space.ml").write_text("let s = 2\n")
    _commit(repo, "edit and add")
    # 3: pure rename, delete, mode change, CRLF edit
    git(repo, "mv", "src/keep.ml", "src/kept.ml")
    (repo / "src/b.ml").unlink()
    os.chmod(repo / "run.sh", 0o755)
    (repo / "notes.txt").write_bytes(b"line one\r\nline 2\r\nline three\r\n")
    _commit(repo, "rename, delete, chmod, crlf")
    # 4: rename with edits, newline added at EOF, unicode name
    git(repo, "mv", "src/a.ml", "src/alpha.ml")
    al = (repo / "src/alpha.ml").read_text().replace("let a10 x", "let a10 y")
    (repo / "src/alpha.ml").write_text(al)
    (repo / "src/c.ml").write_text("let c = B.b0 1\n")
    (repo / "src/caf\u00e9.ml").write_text("let cafe = ()\n")
    _commit(repo, "rename with edits")
    return repo


def _commits(repo: Path) -> list[str]:
    return git(repo, "rev-list", "--reverse", "HEAD").split()


def _checkout(repo: Path, rev: str, dest: Path) -> None:
    dest.mkdir(parents=True)
    git(repo, f"--work-tree={dest}", "checkout", rev, "--", ".")
    git(repo, "reset", "-q")  # leave the index as it was


def _tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = (p.read_bytes(), os.access(p, os.X_OK))
    return out


@pytest.mark.parametrize("step", [1, 2, 3])
@pytest.mark.parametrize("diff_args", [["diff", "-M"], ["diff", "--no-renames"], ["format-patch"]])
def test_apply_agrees_with_git_apply(
    history: Path, tmp_path: Path, step: int, diff_args: list[str]
) -> None:
    revs = _commits(history)
    parent, child = revs[step - 1], revs[step]
    if diff_args == ["format-patch"]:
        text = git(history, "format-patch", "--stdout", "-M", f"{parent}..{child}")
    else:
        text = git(history, *diff_args, parent, child)
    patch_file = tmp_path / "p.diff"
    patch_file.write_bytes(text.encode())
    ours, theirs, want = tmp_path / "ours", tmp_path / "theirs", tmp_path / "want"
    _checkout(history, parent, ours)
    shutil.copytree(ours, theirs)
    _checkout(history, child, want)
    check = subprocess.run(["git", "apply", "--check", str(patch_file)], cwd=theirs)
    assert check.returncode == 0
    before = {p: data for p, (data, _) in _tree(ours).items()}
    dry = apply_patch(ours, text, dry_run=True)
    assert dry.ok, dry.summary()
    subprocess.run(["git", "apply", str(patch_file)], cwd=theirs, check=True)
    result = apply_patch(ours, text)
    assert result.ok, result.summary()
    assert _tree(ours) == _tree(theirs) == _tree(want)
    # the in-memory apply agrees too
    out, mem = apply_to_files(before, text)
    assert mem.ok and out == {p: data for p, (data, _) in _tree(want).items()}
    # and a second application is refused by both (already applied)
    assert not apply_patch(ours, text).ok
    again = subprocess.run(["git", "apply", "--check", str(patch_file)], cwd=theirs)
    assert again.returncode != 0


def test_rename_metadata_is_parsed(history: Path) -> None:
    revs = _commits(history)
    patch = parse_patch(git(history, "diff", "-M", revs[2], revs[3]))
    by_new = {fp.new_path: fp for fp in patch.files}
    alpha = by_new["src/alpha.ml"]
    assert alpha.is_rename and alpha.old_path == "src/a.ml" and alpha.hunks
    assert alpha.similarity is not None and 50 < alpha.similarity < 100
    assert "src/caf\u00e9.ml" in by_new and by_new["src/caf\u00e9.ml"].is_new
    patch = parse_patch(git(history, "diff", "-M", revs[1], revs[2]))
    kinds = {fp.path: fp for fp in patch.files}
    assert kinds["src/kept.ml"].is_rename and not kinds["src/kept.ml"].hunks
    assert kinds["src/b.ml"].is_delete
    assert (kinds["run.sh"].old_mode, kinds["run.sh"].new_mode) == ("100644", "100755")


def test_render_tree_diff_matches_git_apply_on_history(history: Path, tmp_path: Path) -> None:
    revs = _commits(history)
    a, b = tmp_path / "a", tmp_path / "b"
    _checkout(history, revs[0], a)
    _checkout(history, revs[-1], b)
    text = render_tree_diff(a, b, detect_renames=True)
    work = tmp_path / "work"
    shutil.copytree(a, work)
    (tmp_path / "r.diff").write_bytes(text.encode())
    subprocess.run(["git", "apply", str(tmp_path / "r.diff")], cwd=work, check=True)
    assert _tree(work) == _tree(b)
    files = {p: data for p, (data, _) in _tree(a).items()}
    out, result = apply_to_files(files, text)
    assert result.ok
    assert out == {p: data for p, (data, _) in _tree(b).items()}
