"""Watch-mode probe (work in progress)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bactrian.types import BuildResult, BuildState


def watcher_alive(workspace: Path) -> bool:
    return False


@dataclass
class WatchProbe:
    wait_s: float = 10.0
    stale_s: float = 3.0
    name: str = "dune-watch"

    def run(self, workspace: Path, tree_id: str | None = None) -> BuildResult:
        return BuildResult(BuildState.UNKNOWN, 0.0, [], "bactrian: no watcher", "", None, self.name)
