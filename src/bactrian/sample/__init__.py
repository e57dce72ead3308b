"""The bundled sample OCaml workspace (``tally``) and its scripted editing session.

* :func:`workspace_path` / :func:`copy_workspace` — the dune project shipped in the package;
* :data:`SESSION` — the timed edits a developer makes to it; :data:`EXPECTED_EPISODES` — what
  mining its replay must yield;
* :func:`replay` — copy the workspace and play the session into it while the real snapshotter
  records the timeline (real dune builds).
"""

from __future__ import annotations

from bactrian.sample.replay import DEFAULT_BUILD_CMD, DEFAULT_SPEED, replay
from bactrian.sample.script import Edit, ExpectedEpisode, Session, Step
from bactrian.sample.session import EXPECTED_EPISODES, SESSION
from bactrian.sample.workspace import copy_workspace, read_tree, workspace_path

__all__ = [
    "DEFAULT_BUILD_CMD",
    "DEFAULT_SPEED",
    "EXPECTED_EPISODES",
    "SESSION",
    "Edit",
    "ExpectedEpisode",
    "Session",
    "Step",
    "copy_workspace",
    "read_tree",
    "replay",
    "workspace_path",
]
