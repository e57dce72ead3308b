"""Multi-file unified diffs: parse, render, apply strictly and leniently, safely.

    parse_patch(text) -> Patch
    render_diff(old_files, new_files) / render_tree_diff(old_dir, new_dir) -> str
    apply_patch(root, patch, lenient=..., dry_run=...) -> ApplyResult      (a directory)
    apply_to_files(files, patch, lenient=...) -> (new_files, ApplyResult)  (in memory)
    extract_changes(model_output, files) -> ChangeSet                      (model output)
    normalize_patch(files, patch) -> (clean diff text, ApplyResult)        (for previews)
    patch.stats(), exact_hash(text), normalised_hash(text)                 (for the miner)

See ``docs/diffs.md`` for the formats accepted, the lenient ladder and the safety rules.
"""

from bactrian.diffs.apply import apply_patch, apply_to_files, check_path, normalize_patch
from bactrian.diffs.config import DiffsConfig, load_diffs_config
from bactrian.diffs.extract import ChangeSet, extract_changes
from bactrian.diffs.fingerprint import exact_hash, normalised_hash
from bactrian.diffs.ladder import LadderConfig
from bactrian.diffs.model import (
    RUNGS,
    ApplyResult,
    DiffLimits,
    FilePatch,
    FileResult,
    Hunk,
    HunkResult,
    Patch,
    touched_paths,
)
from bactrian.diffs.parse import parse_patch
from bactrian.diffs.render import render_diff, render_patch, render_tree_diff

__all__ = [
    "RUNGS",
    "ApplyResult",
    "ChangeSet",
    "DiffLimits",
    "DiffsConfig",
    "FilePatch",
    "FileResult",
    "Hunk",
    "HunkResult",
    "LadderConfig",
    "Patch",
    "apply_patch",
    "apply_to_files",
    "check_path",
    "exact_hash",
    "extract_changes",
    "load_diffs_config",
    "normalised_hash",
    "normalize_patch",
    "parse_patch",
    "render_diff",
    "render_patch",
    "render_tree_diff",
    "touched_paths",
]
