"""Hashes of a diff for deduplication: exact (the text) and near (the changes with
whitespace collapsed, hunk positions and context dropped, files by base name)."""

from __future__ import annotations

import hashlib

from bactrian.diffs.model import Patch
from bactrian.diffs.parse import parse_patch
from bactrian.errors import DiffError


def exact_hash(diff: str) -> str:
    return hashlib.sha256(diff.encode()).hexdigest()[:16]


def normalised_hash(diff: str | Patch) -> str:
    """Hash of a diff's changes with whitespace collapsed and hunk positions/context dropped,
    so the same edit at another line, or re-indented, hashes the same (near-duplicates).
    Text that is not a diff hashes as its whitespace-collapsed self."""
    if isinstance(diff, str):
        try:
            patch = parse_patch(diff) if diff.strip() else Patch()
        except DiffError:
            return hashlib.sha256(("T " + " ".join(diff.split())).encode()).hexdigest()[:16]
    else:
        patch = diff
    parts: list[str] = []
    for fp in sorted(patch.files, key=lambda f: f.path):
        parts.append("F " + fp.path.rsplit("/", 1)[-1])
        lines = [(tag, text) for h in fp.hunks for tag, text in h.lines]
        parts += ["- " + " ".join(t.split()) for tag, t in lines if tag == "-" and t.strip()]
        parts += ["+ " + " ".join(t.split()) for tag, t in lines if tag == "+" and t.strip()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
