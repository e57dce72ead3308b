"""Strict application of the git-style text diffs the miner renders, to an in-memory file map or
a directory the miner owns (materialised bases). User-facing diff handling — lenient apply,
path safety for untrusted diffs — is ``bactrian.diffs``' job."""

from __future__ import annotations

from pathlib import Path

from bactrian.diffs import Patch, apply_to_files, parse_patch
from bactrian.errors import DiffError, MiningError
from bactrian.mine.textdiff import FileMap


def apply_to_map(files: FileMap, diff: str, only: set[str] | None = None) -> FileMap:
    """``files`` with ``diff`` applied strictly by :func:`bactrian.diffs.apply_to_files` (a new
    dict). ``only`` limits which files are patched."""
    if not diff.strip():
        return dict(files)
    try:
        patch = parse_patch(diff)
    except DiffError as exc:
        raise MiningError(f"cannot read a mined diff: {exc}") from exc
    if only is not None:
        patch = Patch([fp for fp in patch.files if fp.path in only])
    for fp in patch.files:
        if fp.binary:
            raise MiningError(f"{fp.path}: cannot apply a binary diff")
    try:
        new, result = apply_to_files(files, patch)
    except DiffError as exc:
        raise MiningError(str(exc)) from exc
    if not result.ok:
        failed = [f"{f.path}: {f.error}" for f in result.files if f.error]
        raise MiningError("the diff does not apply: " + "; ".join(failed or ["unknown reason"]))
    return new


def apply_to_dir(root: Path, diff: str) -> list[str]:
    """Apply ``diff`` to the files under ``root`` (a tree the miner created); returns the paths
    written. Paths escaping ``root`` are refused."""
    root = root.resolve()
    try:
        paths = [fp.path for fp in parse_patch(diff).files] if diff.strip() else []
    except DiffError as exc:
        raise MiningError(f"cannot read a mined diff: {exc}") from exc
    files: FileMap = {}
    for path in paths:
        target = (root / path).resolve()
        if not target.is_relative_to(root):
            raise MiningError(f"refusing to write {path}: outside {root}")
        if target.is_file():
            files[path] = target.read_bytes()
    new = apply_to_map(files, diff)
    for path in paths:
        target = root / path
        if path in new:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(new[path])
        else:
            target.unlink(missing_ok=True)
    return paths
