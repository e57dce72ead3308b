"""Play the scripted session into a copy of the sample while the real snapshotter records it.

The clock: step ``k`` is snapshotted once the wall clock reaches ``t0 + at_s / speed`` (``t0``
= when the replay started). Time spent building and recording counts towards the wait, so a
replay lasts about ``max(session duration / speed, total build time)``. The recorded snapshot
time is the scripted one, ``start_time + at_s``.

Every build status comes from a real build run by the snapshotter's probe: by default the dune
probe with ``@check @runtest`` (so a failing test makes a snapshot red); a ``build_cmd`` in
the snapshot config replaces it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bactrian.buildstatus.probe import BuildConfig, BuildProbe, choose_probe
from bactrian.errors import ConfigError, StoreError, WorkspaceError
from bactrian.sample.script import Session, Step
from bactrian.sample.session import SESSION
from bactrian.sample.workspace import copy_workspace
from bactrian.snapshot import Snapshot, SnapshotConfig, load_config, open_store, take_snapshot

DEFAULT_SPEED = 60.0
"""Scripted seconds per wall-clock second: the ~10 minute session replays in ~11 s of waiting."""

DUNE_TARGETS = "@check @runtest"
DEFAULT_BUILD_CMD = f"dune build {DUNE_TARGETS} --root . --display quiet"
"""What the default probe runs (the dune probe with these targets, cache off, no colour)."""

T = TypeVar("T")


def check_speed(speed: float) -> float:
    if not speed > 0 or math.isnan(speed):
        raise ConfigError(
            f"Replay speed must be a positive number of scripted seconds per second, got {speed}. "
            "Use e.g. --speed 60 (or inf to not wait at all)."
        )
    return speed


def play(
    dest: Path,
    on_step: Callable[[int, Step], T],
    *,
    session: Session = SESSION,
    speed: float = DEFAULT_SPEED,
) -> list[T]:
    """Apply ``session`` to the tree at ``dest`` step by step on the scaled clock, calling
    ``on_step(index, step)`` after each step's edits; returns what it returned."""
    check_speed(speed)
    t0 = time.monotonic()
    out: list[T] = []
    for index, step in enumerate(session):
        for edit in step.edits:
            edit.apply(dest)
        delay = t0 + step.at_s / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        out.append(on_step(index, step))
    return out


def replay_probe(dest: Path, config: SnapshotConfig) -> BuildProbe:
    """The probe a replay records with: the config's ``build_cmd`` if set, else dune with
    ``@check @runtest``."""
    if config.build_cmd:
        return choose_probe(
            dest, probe="command", build_cmd=config.build_cmd, timeout_s=config.build_timeout_s
        )
    build_cfg = dataclasses.replace(
        BuildConfig.load(), dune_targets=DUNE_TARGETS, timeout_s=config.build_timeout_s
    )
    return choose_probe(dest, probe="dune", config=build_cfg)


def _refuse_existing_timeline(dest: Path, config: SnapshotConfig) -> None:
    try:
        store = open_store(dest, config)
    except StoreError:
        return
    try:
        count = len(store.timeline())
        root = getattr(store, "root", None)
    finally:
        store.close()
    if count:
        raise WorkspaceError(
            f"A snapshot timeline of {count} snapshots is already recorded for {dest}"
            + (f" (store {root})" if root else "")
            + ". Replay into a new path, or delete that store first, so the timeline holds "
            "only this session."
        )


def snapshot_line(index: int, step: Step, snap: Any) -> str:
    """``#seq  t=+at_s  state  first diagnostic`` — one line per snapshot."""
    first = snap.build.diagnostics[0].headline() if snap.build.diagnostics else ""
    return f"#{snap.seq:<3} t=+{step.at_s:<5.0f} {snap.build.state.value:<7} {first}".rstrip()


def replay(
    dest: Path,
    *,
    speed: float = DEFAULT_SPEED,
    config: SnapshotConfig | None = None,
    start_time: float | None = None,
    progress: Callable[[str], None] | None = None,
    session: Session = SESSION,
) -> list[Snapshot]:
    """Copy the sample to ``dest`` (new or empty), then play ``session`` into it, taking one
    real snapshot per step (step 0 = the untouched copy). Returns the snapshots in order:
    ``result[k]`` is step ``k``'s snapshot.

    ``config``: snapshot settings (default: the ``[snapshot]`` config); ``start_time``: unix
    time recorded for step 0 (default: now minus the session's scripted duration);
    ``progress``: called with one line per snapshot.
    """
    check_speed(speed)
    cfg = config or load_config()
    dest = Path(dest).absolute()
    _refuse_existing_timeline(dest, cfg)
    copy_workspace(dest)
    dest = dest.resolve()
    probe = replay_probe(dest, cfg)
    # Default: the session "happened" just now, so every recorded time is in the past and a
    # later `bactrian snapshot take` continues the timeline in order.
    t_start = time.time() - session.duration_s if start_time is None else start_time
    last_seq: list[int] = []

    def snap(index: int, step: Step) -> Snapshot:
        s = take_snapshot(dest, config=cfg, probe=probe, now=t_start + step.at_s)
        if last_seq and s.seq == last_seq[-1]:
            raise WorkspaceError(
                f"Step {index} ({step.title!r}) left the tree unchanged, so no snapshot was "
                "recorded for it; every scripted step must change the workspace."
            )
        last_seq.append(s.seq)
        if progress is not None:
            progress(snapshot_line(index, step, s))
        return s

    return play(dest, snap, session=session, speed=speed)
