"""The ``apply`` stage: put a diff into a worker tree with :mod:`bactrian.diffs` (which
refuses ``..``, absolute paths and writes beyond symlinks); a diff that names a build or VCS
directory is refused here before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.ces.tree import BUILD_DIRS, VCS_DIRS
from bactrian.diffs import apply_patch, parse_patch, touched_paths
from bactrian.diffs.model import DiffLimits
from bactrian.errors import DiffError, DiffTimeoutError

RESERVED_DIRS = BUILD_DIRS | VCS_DIRS


def _reserved(path: str) -> bool:
    return path.split("/")[0] in RESERVED_DIRS


def _sources_only(paths: list[str]) -> list[str]:
    """A path into a build or VCS directory is refused, and never reported as touched: the
    caller acts on touched paths, and those directories are written by sandboxed code."""
    return [p for p in paths if not _reserved(p)]


@dataclass
class Applied:
    ok: bool
    touched: list[str] = field(default_factory=list)  # every path named (old and new)
    lenient: bool = False
    message: str = ""
    result: dict[str, Any] | None = None  # ApplyResult.to_dict()
    timed_out: bool = False  # placing the hunks ran past ``timeout_s``


def apply_diff(
    tree: Path, diff: str, *, lenient: bool = False, timeout_s: float | None = None
) -> Applied:
    """Apply ``diff`` to ``tree``; never raises for a bad diff (returns ``ok=False``).
    ``timeout_s`` bounds the time spent placing hunks (the lenient ladder searches the file
    for each one): past it nothing is written and ``timed_out`` is set."""
    try:
        patch = parse_patch(diff)
        touched = touched_paths(patch)
        reserved = [p for p in touched if _reserved(p)]
        if reserved:
            return Applied(
                ok=False,
                touched=[],
                message=f"The diff writes into a build or VCS directory ({', '.join(reserved)}): "
                "refused. Diffs may change sources only.",
            )
        limits = DiffLimits(max_seconds=timeout_s) if timeout_s else None
        result = apply_patch(tree, patch, lenient=lenient, limits=limits)
    except DiffTimeoutError as exc:
        return Applied(ok=False, message=str(exc), timed_out=True)
    except DiffError as exc:
        return Applied(ok=False, message=str(exc))
    return Applied(
        ok=bool(result.ok),
        touched=_sources_only(sorted(set(touched) | set(result.changed_paths))),
        lenient=bool(result.lenient and result.counts().get("lenient", 0) > 0),
        message=result.summary(),
        result=result.to_dict(),
    )
