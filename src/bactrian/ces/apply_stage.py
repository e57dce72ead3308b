"""The ``apply`` stage: put a diff into a worker tree with :mod:`bactrian.diffs`.

Until ``bactrian.diffs.apply_patch`` is importable, a fallback uses ``git apply`` (which also
refuses ``..``, absolute paths and writes beyond symlinks, and works outside a repository).
"""

from __future__ import annotations

import importlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.ces.tree import BUILD_DIRS, VCS_DIRS
from bactrian.errors import DiffError

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


def apply_diff(tree: Path, diff: str, *, lenient: bool = False) -> Applied:
    """Apply ``diff`` to ``tree``; never raises for a bad diff (returns ``ok=False``)."""
    try:
        diffs: Any = importlib.import_module("bactrian.diffs")
        apply_patch, parse_patch = diffs.apply_patch, diffs.parse_patch
        touched_paths = diffs.touched_paths
    except (ImportError, AttributeError):
        return _git_apply(tree, diff)
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
        result = apply_patch(tree, patch, lenient=lenient)
    except DiffError as exc:
        return Applied(ok=False, message=str(exc))
    return Applied(
        ok=bool(result.ok),
        touched=_sources_only(sorted(set(touched) | set(result.changed_paths))),
        lenient=bool(result.lenient and result.counts().get("lenient", 0) > 0),
        message=result.summary(),
        result=result.to_dict(),
    )


def _git_apply(tree: Path, diff: str) -> Applied:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "apply", *args],
            cwd=tree,
            input=diff,
            text=True,
            capture_output=True,
            check=False,
            env={
                "PATH": "/usr/bin:/bin",
                "GIT_CEILING_DIRECTORIES": str(tree.parent),
                "HOME": "/nonexistent",
            },
        )

    numstat = git("--numstat", "-z")
    if numstat.returncode != 0:
        return Applied(ok=False, message=numstat.stderr.strip())
    touched = sorted({p.split("\t")[-1] for p in numstat.stdout.split("\0") if p.strip()})
    if any(_reserved(p) for p in touched):
        return Applied(ok=False, message="The diff writes into a build or VCS directory: refused.")
    proc = git()
    if proc.returncode != 0:
        return Applied(ok=False, touched=touched, message=proc.stderr.strip())
    return Applied(ok=True, touched=touched, message=proc.stderr.strip())
