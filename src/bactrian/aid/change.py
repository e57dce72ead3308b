"""The workspace's current change against its VCS base (git ``HEAD``, hg ``.``), read-only,
described by the miner's describer (``describe``: feature descriptions and reviews)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bactrian.aid.context import read_text
from bactrian.dataset.example import Example
from bactrian.diffs import render_diff
from bactrian.errors import BactrianError, MiningError
from bactrian.mine.describe import make_describer
from bactrian.mine.vcs import detect_kind, open_vcs
from bactrian.vcs import run_vcs


@dataclass
class Change:
    vcs: str | None
    base: dict[str, str]
    current: dict[str, str]
    diff: str


def _changed_git(root: Path) -> list[str]:
    raw = run_vcs(
        ["git", "status", "--porcelain", "-z", "--untracked-files=all"], root, error=MiningError
    )
    out, items, i = [], raw.decode(errors="replace").split("\0"), 0
    while i < len(items):
        entry = items[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if "R" in code or "C" in code:
            i += 1  # the rename's source follows
        out.append(path)
    return sorted(set(out))


def _changed_hg(root: Path) -> list[str]:
    raw = run_vcs(["hg", "status", "-marduT", "{path}\\0"], root, error=MiningError)
    return sorted({p for p in raw.decode(errors="replace").split("\0") if p})


def workspace_change(root: Path, max_bytes: int = 256 * 1024) -> Change:
    kind = detect_kind(root)
    if kind is None:
        return Change(None, {}, {}, "")
    paths = _changed_git(root) if kind == "git" else _changed_hg(root)
    paths = [p for p in paths if not p.startswith((".git/", ".hg/"))]
    reader = open_vcs(root, kind)
    try:
        base_raw = reader.read("HEAD" if kind == "git" else ".", paths)
    finally:
        reader.close()
    base = {p: b.decode("utf-8", errors="replace") for p, b in base_raw.items() if b"\0" not in b}
    current: dict[str, str] = {}
    for p in paths:
        real = os.path.realpath(root / p)
        if not real.startswith(str(root) + os.sep):
            continue
        text = read_text(root, p, max_bytes)
        if text is not None:
            current[p] = text
    diff = render_diff(
        {p: t.encode() for p, t in base.items()}, {p: t.encode() for p, t in current.items()}
    )
    return Change(kind, base, current, diff)


def describe_change(
    root: Path, diagnostics: list[dict[str, Any]], max_chars: int = 0
) -> dict[str, Any]:
    ch = workspace_change(root)
    if ch.vcs is None:
        return {
            "description": f"{root} is not a git or Mercurial working copy: there is no "
            "base to describe a change against.",
            "prompt": "",
            "diff": "",
            "vcs": None,
            "files": [],
        }
    if not ch.diff:
        return {
            "description": "Nothing changed against the VCS base.",
            "prompt": "",
            "diff": "",
            "vcs": ch.vcs,
            "files": [],
        }
    ex = Example(
        source=f"aid:{root}",
        kind="change",
        diff=ch.diff,
        context={"files": ch.base, "diagnostics": diagnostics},
        base={"workspace": str(root)},
    )
    try:
        desc = make_describer().describe(ex)
    except BactrianError as exc:
        raise MiningError(f"Describing the change failed: {exc}") from None
    text = desc.description or desc.prompt
    if max_chars > 0:
        text = text[:max_chars]
    files = sorted(set(ch.base) | set(ch.current))
    return {
        "description": text,
        "prompt": desc.prompt,
        "diff": ch.diff,
        "vcs": ch.vcs,
        "files": files,
    }
