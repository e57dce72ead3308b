"""A one-time warning when a workspace has never been green: after
:data:`NEVER_GREEN_AFTER` snapshots that are all red or unknown, the snapshotter logs once why
(the causes read from the last build's output, e.g. ``bench/`` needs ``core_bench``) and the
scope ``bactrian doctor`` would suggest. Kept in the store's index metadata
(``ever_green``, ``never_green_warned``), so it is said once per store, not once per run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bactrian.scopes import hint_line
from bactrian.types import BuildState

log = logging.getLogger("bactrian.snapshot")

NEVER_GREEN_AFTER = 3


def never_green_message(workspace: Any, snap: Any) -> str:
    """The warning's text for ``snap`` (the latest snapshot) of ``workspace``."""

    n = snap.seq
    if snap.build.state is BuildState.UNKNOWN:
        last = [x for x in snap.build.log.strip().splitlines() if x.strip()]
        why = last[-1] if last else "the build probe gave no answer"
        return (
            f"{workspace}: the build has been unknown or red for all {n} snapshots; no episode "
            f"can be mined. Last probe: {why}"
        )
    hint = hint_line(snap.build.log, Path(workspace), str(workspace))
    return (
        f"{workspace}: the build has been red or unknown for all {n} snapshots, so no episode "
        f"can be mined: {hint}"
    )


def note_build_health(store: Any, snap: Any) -> str | None:
    """Record whether ``store`` has ever been green; warn once (and return the warning) when
    it has not after :data:`NEVER_GREEN_AFTER` snapshots."""
    db = store.db
    if db.get_meta("ever_green") == "1":
        return None
    if snap.build.state is BuildState.GREEN:
        db.set_meta("ever_green", "1")
        return None
    if db.get_meta("ever_green") == "" and snap.seq > 1:
        # a store from before this bookkeeping: look at its timeline once
        green = any(r.state is BuildState.GREEN for r in store.timeline_rows())
        db.set_meta("ever_green", "1" if green else "0")
        if green:
            return None
    elif db.get_meta("ever_green") == "":
        db.set_meta("ever_green", "0")
    if snap.seq < NEVER_GREEN_AFTER or db.get_meta("never_green_warned") == "1":
        return None
    msg = never_green_message(store.workspace, snap)
    db.set_meta("never_green_warned", "1")
    log.warning("%s", msg)
    return msg
