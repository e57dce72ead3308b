"""The miner's read-only view of an example's diff, through :func:`bactrian.diffs.parse_patch`
(one parser for the whole system): per-file added and removed lines, dropping files from a
diff, and counts."""

from __future__ import annotations

from collections.abc import Callable

from bactrian.diffs import FilePatch, Patch, parse_patch
from bactrian.diffs.render import render_patch


def as_patch(diff: str) -> Patch:
    """``diff`` parsed; an empty diff is an empty :class:`Patch` (not an error)."""
    return parse_patch(diff) if diff.strip() else Patch()


def added(fp: FilePatch) -> list[str]:
    """The added lines of one file, without their line terminators."""
    return [t.rstrip("\r\n") for h in fp.hunks for tag, t in h.lines if tag == "+"]


def removed(fp: FilePatch) -> list[str]:
    return [t.rstrip("\r\n") for h in fp.hunks for tag, t in h.lines if tag == "-"]


def changed_lines(diff: str) -> int:
    s = as_patch(diff).stats()
    return s["added"] + s["removed"]


def without_files(diff: str, drop: Callable[[FilePatch], bool]) -> tuple[str, list[str]]:
    """``diff`` without the files ``drop`` selects (rendered back byte for byte), and the paths
    dropped."""
    patch = as_patch(diff)
    gone = [fp.path for fp in patch.files if drop(fp)]
    if not gone:
        return diff, []
    kept = Patch([fp for fp in patch.files if not drop(fp)])
    return (render_patch(kept) if kept else ""), gone
