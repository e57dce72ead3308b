"""Ignore rules: .hgignore translation checked against Mercurial itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bactrian.snapshot import SnapshotConfig, open_store, take_snapshot
from bactrian.snapshot.rules import parse_hgignore

from .conftest import sh, write

HGIGNORE = """\
# comment
syntax: glob
*.tmp
build/out
rootglob:top.txt

syntax: regexp
^generated/
\\.bak$
^notes$
(^|/)cache/
[0-9]{3}\\.dat$
re:^docs/.*\\.draft$
glob:*.orig
"""

FILES = [
    "a.tmp",
    "src/b.tmp",
    "build/out/x.ml",
    "src/build/out/y.ml",
    "top.txt",
    "src/top.txt",
    "generated/g.ml",
    "src/generated/g.ml",
    "x.bak",
    "src/y.bak",
    "notes",
    "src/notes",
    "cache/c.ml",
    "src/cache/d.ml",
    "mycache/e.ml",
    "123.dat",
    "src/12.dat",
    "docs/a.draft",
    "docs/a.md",
    "z.orig",
    "keep.ml",
]


def test_hgignore_matches_mercurial(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    sh(["hg", "init"], ws)
    write(ws, {".hgignore": HGIGNORE, **{f: "x\n" for f in FILES}})
    hg_ignored = set(sh(["hg", "status", "-i", "-n"], ws).split())
    assert hg_ignored  # the fixture exercises hg's rules
    cfg = SnapshotConfig(probe="none", store_dir=tmp_path / "store")
    snap = take_snapshot(ws, config=cfg)
    recorded = set(open_store(ws, cfg).file_list(snap))
    for f in FILES:
        assert (f in recorded) == (f not in hg_ignored), f


def test_parse_hgignore_translations() -> None:
    pats, regexps = parse_hgignore("^_build/\n\\.o$\n^foo$\nglob:*.c\nsyntax: glob\nsrc/*.gen\n")
    assert pats == ["/_build/", "*.o", "/foo", "*.c", "**/src/*.gen"]
    assert regexps == []
    pats, regexps = parse_hgignore("^a(b|c)d\n")
    assert pats == [] and regexps[0].search("acd/x")


@given(st.text(max_size=200))
def test_parse_hgignore_never_crashes(text: str) -> None:
    pats, regexps = parse_hgignore(text)
    assert all(isinstance(p, str) and "\n" not in p for p in pats)


@pytest.mark.parametrize("line", ["syntax: glob", "# only a comment", ""])
def test_non_pattern_lines(line: str) -> None:
    assert parse_hgignore(line) == ([], [])
