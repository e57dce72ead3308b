"""Small, self-contained unified-diff helpers the miner needs: render git-style multi-file diffs
from two file maps, split a diff text into per-file sections, count lines, and hash a diff
after normalisation (for near-duplicate detection).

Rendering goes through ``bactrian.diffs`` (one renderer for the whole system), so mined diffs
are byte-identical whatever the source (snapshot store, git, Mercurial).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from bactrian.diffs import render_diff
from bactrian.diffs.render import as_text

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


_HEADER = re.compile(r"^diff --git a/(.*) b/(.*)$")


def split_files(diff: str) -> list[FileDiff]:
    """The per-file sections of a git-style diff, with their added and removed lines."""
    out: list[FileDiff] = []
    cur: FileDiff | None = None
    chunk: list[str] = []
    for line in diff.splitlines(keepends=True):
        m = _HEADER.match(line.rstrip("\n"))
        if m:
            if cur is not None:
                cur.text = "".join(chunk)
                out.append(cur)
            cur = FileDiff(path=m.group(2), text="")
            chunk = [line]
            continue
        if cur is None:
            continue
        chunk.append(line)
        if line.startswith("Binary files "):
            cur.binary = True
        elif line.startswith("new file mode"):
            cur.new_file = True
        elif line.startswith("deleted file mode"):
            cur.deleted = True
        elif line.startswith("+") and not line.startswith("+++ "):
            cur.added.append(line[1:].rstrip("\n"))
        elif line.startswith("-") and not line.startswith("--- "):
            cur.removed.append(line[1:].rstrip("\n"))
    if cur is not None:
        cur.text = "".join(chunk)
        out.append(cur)
    return out


def diff_stats(diff: str) -> dict[str, int]:
    files = split_files(diff)
    added = sum(len(f.added) for f in files)
    removed = sum(len(f.removed) for f in files)
    return {"files": len(files), "added": added, "removed": removed, "changed": added + removed}


def normalised_hash(diff: str) -> str:
    """Hash of a diff's changes with whitespace collapsed and hunk positions/context dropped,
    so the same edit at another line, or re-indented, hashes the same (near-duplicates)."""
    parts: list[str] = []
    for f in sorted(split_files(diff), key=lambda f: f.path):
        parts.append("F " + f.path.rsplit("/", 1)[-1])
        parts += ["- " + " ".join(x.split()) for x in f.removed if x.strip()]
        parts += ["+ " + " ".join(x.split()) for x in f.added if x.strip()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def exact_hash(diff: str) -> str:
    return hashlib.sha256(diff.encode()).hexdigest()[:16]
