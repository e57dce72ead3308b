"""Diffs from a real Mercurial repository (plain ``hg diff`` with its ``diff -r`` lines and
dated headers, and ``hg diff --git``) apply to give the next revision exactly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bactrian.diffs import apply_patch, parse_patch


def hg(repo: Path, *args: str) -> str:
    run = subprocess.run(
        ["hg", "--config", "ui.username=t <t@example.com>", *args],
        cwd=repo,
        capture_output=True,
        check=True,
        env={"HGPLAIN": "1", "HGRCPATH": "", "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    return run.stdout.decode("utf-8")


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != ".hg_archival.txt"
    }


@pytest.mark.parametrize("git_style", [False, True])
def test_hg_diffs_apply(tmp_path: Path, git_style: bool) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    hg(repo, "init")
    (repo / "a.ml").write_text("".join(f"let a{i} = {i}\n" for i in range(20)))
    (repo / "gone.ml").write_text("let gone = ()\n")
    hg(repo, "commit", "-A", "-m", "base")
    (repo / "a.ml").write_text(
        "".join(f"let a{i} = {i * (2 if i in (3, 15) else 1)}\n" for i in range(20))
    )
    (repo / "gone.ml").unlink()
    (repo / "new file.ml").write_text("let fresh = 1")
    hg(repo, "commit", "-A", "-m", "edit")
    args = ["diff", "-r", "0", "-r", "1"] + (["--git"] if git_style else [])
    text = hg(repo, *args)
    patch = parse_patch(text)
    assert sorted(fp.path for fp in patch.files) == ["a.ml", "gone.ml", "new file.ml"]
    work, want = tmp_path / "work", tmp_path / "want"
    hg(repo, "archive", "-r", "0", str(work))
    hg(repo, "archive", "-r", "1", str(want))
    result = apply_patch(work, text)
    assert result.ok, result.summary()
    assert _tree(work) == _tree(want)
