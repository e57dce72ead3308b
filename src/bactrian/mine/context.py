"""Which files are relevant to an example: files named in the diagnostics, files the diff
touches, and their ``.ml``/``.mli`` and test siblings — chosen among the files that exist in the
base tree only (no future leaks)."""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Iterable


@functools.lru_cache(maxsize=1 << 16)
def module_stem(path: str) -> str:
    """``src/ledger.mli`` → ``ledger``; ``test/test_ledger.ml`` → ``ledger``."""
    name = posixpath.basename(path)
    stem = name.split(".", 1)[0].lower()
    for prefix in ("test_", "tests_"):
        if stem.startswith(prefix):
            stem = stem[len(prefix) :]
    for suffix in ("_test", "_tests"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def is_test_path(path: str) -> bool:
    parts = path.lower().split("/")
    base = parts[-1].split(".", 1)[0]
    return (
        any(p in ("test", "tests") for p in parts[:-1])
        or base.startswith("test_")
        or base.endswith("_test")
    )


def relevant_files(seeds: Iterable[str], existing: Iterable[str], limit: int = 0) -> list[str]:
    """``seeds`` (diagnostic files, touched files) and their siblings, restricted to
    ``existing`` (the base tree's file list), sorted. With ``limit`` > 0 at most that many:
    seeds first, in the order given, then siblings."""
    existing_set = set(existing)
    seeds = [s for s in seeds if s]
    stems = {module_stem(s) for s in seeds if s.endswith((".ml", ".mli"))}
    first = list(dict.fromkeys(s for s in seeds if s in existing_set))
    siblings = sorted(
        p
        for p in existing_set
        if p.endswith((".ml", ".mli")) and module_stem(p) in stems and p not in first
    )
    chosen = first + siblings
    if limit > 0:
        chosen = chosen[:limit]
    return sorted(chosen)


def decode_files(files: dict[str, bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, data in sorted(files.items()):
        try:
            out[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return out
