"""What a workspace is to the build layer, in one place below the probes and the watch: its
stable key (lock and status file names) and whether dune builds it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def workspace_key(workspace: Path) -> str:
    """A stable short id of a workspace path (for lock and status file names)."""
    return hashlib.sha256(str(Path(workspace).resolve()).encode()).hexdigest()[:16]


def is_dune_project(tree: Path) -> bool:
    """Whether ``tree`` is the root of a dune project (a ``dune-project`` file at its top).
    The build probe, the miner's labeller and the CES adapter all decide "dune" by this."""
    return (Path(tree) / "dune-project").is_file()
