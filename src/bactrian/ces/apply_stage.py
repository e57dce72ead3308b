"""The ``apply`` stage: put a diff into a worker tree with :mod:`bactrian.diffs` (which
refuses ``..``, absolute paths and writes beyond symlinks); a diff that names a build or VCS
directory is refused here before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.ces.tree import BUILD_DIRS, VCS_DIRS
from bactrian.diffs import apply_patch, parse_patch, touched_paths
from bactrian.errors import DiffError

RESERVED_DIRS = BUILD_DIRS | VCS_DIRS


@dataclass
class Applied:
    ok: bool
    touched: list[str] = field(default_factory=list)  # every path named (old and new)
    lenient: bool = False
    message: str = ""
    result: dict[str, Any] | None = None  # ApplyResult.to_dict()


def apply_diff(tree: Path, diff: str, *, lenient: bool = False) -> Applied:
    """Apply ``diff`` to ``tree``; never raises for a bad diff (returns ``ok=False``)."""
    try:
        patch = parse_patch(diff)
        touched = touched_paths(patch)
        reserved = [p for p in touched if p.split("/")[0] in RESERVED_DIRS]
        if reserved:
            return Applied(
                ok=False,
                touched=touched,
                message=f"The diff writes into a build or VCS directory ({', '.join(reserved)}): "
                "refused. Diffs may change sources only.",
            )
        result = apply_patch(tree, patch, lenient=lenient)
    except DiffError as exc:
        return Applied(ok=False, message=str(exc))
    return Applied(
        ok=bool(result.ok),
        touched=sorted(set(touched) | set(result.changed_paths)),
        lenient=bool(result.lenient and result.counts().get("lenient", 0) > 0),
        message=result.summary(),
        result=result.to_dict(),
    )
