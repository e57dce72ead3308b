"""Small unified-diff helpers the miner needs: render git-style multi-file diffs from two file
maps, split a diff text into per-file sections and count lines (both read by
``bactrian.diffs.parse_patch``: one diff model), and the dedup hashes (from ``bactrian.diffs``).

Rendering goes through ``bactrian.diffs`` (one renderer for the whole system), so mined diffs
are byte-identical whatever the source (snapshot store, git, Mercurial).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bactrian.diffs import (
    Patch,
    exact_hash,
    normalised_hash,
    parse_patch,
    render_diff,
    render_patch,
)
from bactrian.diffs.render import as_text
from bactrian.errors import DiffError

__all__ = [
    "FileDiff",
    "FileMap",
    "diff_stats",
    "exact_hash",
    "is_binary",
    "normalised_hash",
    "render",
    "split_files",
]

FileMap = dict[str, bytes]


def is_binary(data: bytes) -> bool:
    """Binary as the renderer sees it (NUL bytes or not UTF-8): such a file gets no hunks."""
    return as_text(data) is None


def render(old: FileMap, new: FileMap, paths: list[str] | None = None, context: int = 3) -> str:
    """A multi-file diff turning ``old`` into ``new`` (files sorted by path), rendered by
    :func:`bactrian.diffs.render_diff` so every part of bactrian writes the same text."""
    if paths is None:
        return render_diff(old, new, context=context)
    keys = set(paths)
    return render_diff(
        {p: v for p, v in old.items() if p in keys},
        {p: v for p, v in new.items() if p in keys},
        context=context,
    )


@dataclass
class FileDiff:
    path: str
    text: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    binary: bool = False
    new_file: bool = False
    deleted: bool = False


def split_files(diff: str) -> list[FileDiff]:
    """The per-file sections of a git-style diff, with their added and removed lines, as
    :func:`bactrian.diffs.parse_patch` reads them (text that is not a diff has no files).

    Kept for the miner's prompt, filter and description code until it reads
    :class:`bactrian.diffs.Patch` directly; new code should use ``parse_patch``."""
    out: list[FileDiff] = []
    for fp in _patch(diff).files:
        out.append(
            FileDiff(
                path=fp.path,
                text=render_patch(Patch([fp])),
                added=[t.rstrip("\n") for h in fp.hunks for tag, t in h.lines if tag == "+"],
                removed=[t.rstrip("\n") for h in fp.hunks for tag, t in h.lines if tag == "-"],
                binary=fp.binary,
                new_file=fp.is_new,
                deleted=fp.is_delete,
            )
        )
    return out


def _patch(diff: str) -> Patch:
    if not diff.strip():
        return Patch()
    try:
        return parse_patch(diff)
    except DiffError:
        return Patch()


def diff_stats(diff: str) -> dict[str, int]:
    """Files, added, removed and changed lines (:meth:`bactrian.diffs.Patch.stats`)."""
    return _patch(diff).stats()
