"""Round trips: random trees and random edits → render → parse → apply gives the target
exactly, in memory, on disk, and (for a sample) through real ``git apply`` and ``patch -p1``."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bactrian.diffs import (
    apply_patch,
    apply_to_files,
    parse_patch,
    render_diff,
    render_patch,
    render_tree_diff,
)
from tests.diffs.strategies import tree_and_edit


def _bytes(files: dict[str, str]) -> dict[str, bytes]:
    return {p: t.encode() for p, t in files.items()}


def _write(root: Path, files: dict[str, str]) -> None:
    for p, text in files.items():
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(text.encode())


def _read(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes().decode()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@settings(max_examples=300, deadline=None)
@given(tree_and_edit())
def test_render_parse_apply_reproduces_target(trees: tuple[dict[str, str], dict[str, str]]) -> None:
    old, new = trees
    text = render_diff(old, new)
    patch = parse_patch(text) if text else None
    if patch is None:
        assert old == new
        return
    out, result = apply_to_files(old, patch)
    assert result.ok, result.summary()
    assert out == _bytes(new)
    assert result.counts()["failed"] == 0 and result.counts()["lenient"] == 0
    # rendering the parsed patch gives the same text back
    assert render_patch(patch) == text
    # the lenient ladder takes an exact diff at its first rung
    out2, result2 = apply_to_files(old, patch, lenient=True)
    assert out2 == out and set(result2.rungs()) <= {"exact"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree_and_edit())
def test_git_apply_and_patch_accept_rendered_diffs(
    trees: tuple[dict[str, str], dict[str, str]],
) -> None:
    old, new = trees
    with tempfile.TemporaryDirectory() as tmp:
        a, b, ours, g, pt = (Path(tmp) / n for n in ("a", "b", "ours", "git", "patch"))
        for d in (a, b):
            d.mkdir()
        _write(a, old)
        _write(b, new)
        text = render_tree_diff(a, b)
        assert text == render_diff(old, new)
        assume(text)
        (Path(tmp) / "d.patch").write_bytes(text.encode())
        for d in (ours, g, pt):
            shutil.copytree(a, d)
        subprocess.run(["git", "init", "-q", str(g)], check=True)  # a real repository
        result = apply_patch(ours, text)
        assert result.ok, result.summary()
        assert _read(ours) == new
        run = subprocess.run(
            ["git", "apply", "--whitespace=nowarn", str(Path(tmp) / "d.patch")],
            cwd=g,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr + text
        assert _read(g) == new
        if any(" " in p and not t for p, t in {**old, **new}.items()):
            return  # GNU patch cannot read a name with a space from a bare 'diff --git' line
        run = subprocess.run(
            ["patch", "-p1", "-s", "-f", "-E", "-i", str(Path(tmp) / "d.patch")],
            cwd=pt,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stdout + run.stderr + text
        # GNU patch cannot tell an empty file from a missing one (-E removes both): compare
        # the files with content
        assert {p: t for p, t in _read(pt).items() if t} == {p: t for p, t in new.items() if t}


@pytest.mark.parametrize("context", [0, 1, 3, 5])
def test_context_sizes_round_trip(context: int) -> None:
    old = {"m.ml": "".join(f"let v{i} = {i}\n" for i in range(40))}
    lines = old["m.ml"].splitlines(keepends=True)
    lines[3] = "let v3 = 33\n"
    lines[30:32] = []
    new = {"m.ml": "".join(lines)}
    text = render_diff(old, new, context=context)
    assert text.count("@@ -") == 2
    out, result = apply_to_files(old, text)
    assert result.ok and out == _bytes(new)


@settings(max_examples=60, deadline=None)
@given(tree_and_edit(), st.data())
def test_renames_round_trip_and_git_accepts_them(
    trees: tuple[dict[str, str], dict[str, str]], data: st.DataObject
) -> None:
    old, new = trees
    movable = sorted(p for p in new if p in old and old[p] == new[p] and old[p])
    assume(movable)
    src = data.draw(st.sampled_from(movable))
    dest = "moved/" + src.replace("/", "_")
    new = {**{p: t for p, t in new.items() if p != src}, dest: new[src]}
    text = render_diff(old, new, detect_renames=True)
    assert "\nrename from " in text  # the source may be any file with that content
    out, result = apply_to_files(old, text)
    assert result.ok and out == _bytes(new)
    assert any(f.status == "renamed" for f in result.files)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root, old)
        (root / "d.patch").write_bytes(text.encode())
        run = subprocess.run(
            ["git", "apply", "--whitespace=nowarn", "d.patch"], cwd=root, capture_output=True
        )
        assert run.returncode == 0, run.stderr
        (root / "d.patch").unlink()
        assert _read(root) == new
