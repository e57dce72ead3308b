"""Mining a workspace's snapshot timeline into fix and change examples.

Context comes only from the base snapshot (the example's first snapshot): files named in the
diagnostics, files the diff touches, and their siblings, as they were then — nothing later
(no future leaks). Diffs are rendered from the two snapshots' file contents.

Reads are batched: episodes are mined in chunks; for each chunk the trees of its snapshots are
prefetched, then every file the chunk needs (diff sides and context), each in a few requests to
the store's object reader — when the store offers ``prefetch_trees`` / ``prefetch_files``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bactrian.dataset.example import Example
from bactrian.mine.config import MineConfig
from bactrian.mine.context import TreeContext, decode_files, moved_from
from bactrian.mine.episodes import Episode, EpisodeBounds, find_episodes
from bactrian.mine.textdiff import render


class SnapshotLike(Protocol):
    seq: int
    id: str
    time: float
    tree_id: str

    @property
    def build(self) -> Any: ...


class TimelineStore(Protocol):
    """The part of ``bactrian.snapshot.Store`` the miner reads."""

    workspace: Path
    root: Path

    def timeline(self) -> Sequence[Any]: ...

    def file_list(self, snap: Any) -> list[str]: ...

    def read_files(self, snap: Any, paths: Any = None) -> dict[str, bytes]: ...

    def changed_paths(self, a: Any, b: Any) -> list[str]: ...


CHUNK = 256  # episodes whose trees and files are read together


class _StatePoint:
    __slots__ = ("state", "time")

    def __init__(self, snap: Any) -> None:
        state = getattr(snap, "state", None)  # a TimelineRow has it without decoding its build
        self.state = state if state is not None else snap.build.state
        self.time = snap.time


def load_timeline(store: TimelineStore) -> list[Any]:
    """The store's snapshots, as lazily decoded rows when the store offers them."""
    rows = getattr(store, "timeline_rows", None)
    return list(rows() if rows is not None else store.timeline())


def bounds_of(cfg: MineConfig) -> EpisodeBounds:
    return EpisodeBounds(cfg.min_episode_s, cfg.max_fix_s, cfg.max_change_s)


def timeline_episodes(
    store: TimelineStore, snaps: Sequence[Any], cfg: MineConfig, skipped: dict[str, int]
) -> list[Episode]:
    def same_diff(before: int, last_red: int, end: int) -> bool:
        # both diffs end at the same tree, so they are equal exactly when they start from
        # the same tree: no need to read anything
        return bool(snaps[before].tree_id == snaps[last_red].tree_id)

    # a TimelineRow already has ``state`` and ``time`` (its build is decoded only when read)
    fast = all(getattr(s, "state", None) is not None for s in snaps)
    points = snaps if fast else [_StatePoint(s) for s in snaps]
    return find_episodes(points, bounds_of(cfg), same_diff=same_diff, skipped=skipped)


@dataclass
class _Plan:
    """What one episode reads: its snapshots, the files its diff touches, its context files."""

    ep: Episode
    base: Any
    end: Any
    touched: list[str]
    diags: list[dict[str, Any]]
    ctx_paths: list[str]
    empty_reason: str | None = None


def _plan(store: TimelineStore, snaps: Sequence[Any], ep: Episode, max_context_files: int) -> _Plan:
    """Context through the base's dune stanzas; diagnostics that point into generated files
    (ocamllex output under ``_build``) mapped back to their sources."""
    base, end = snaps[ep.base], snaps[ep.end]
    touched = sorted(store.changed_paths(base, end))
    ctx = TreeContext(store.file_list(base), lambda ps: store.read_files(base, ps))
    diags = []
    if ep.kind == "fix":
        for d in base.build.diagnostics:
            raw = d.to_dict()
            raw["file"] = _rel(store, raw["file"])
            diags.append(ctx.map_diagnostic(raw))
    seeds = list(dict.fromkeys([d["file"] for d in diags] + touched))
    new_files = [p for p in touched if p not in ctx.existing]
    moved: list[str] = []
    if new_files:
        before = store.read_files(base, [p for p in touched if p in ctx.existing])
        after = store.read_files(end, touched)
        moves = moved_from(before, after)
        moved = [q for p in new_files for q in moves.get(p, [])]
    # modules the diagnostics name ("Unbound value Types.foo"); the diff is rendered later
    diff_hint = "\n".join(str(d.get("message", "")) for d in diags)
    choice = ctx.choose(
        seeds, diff=diff_hint, moved=moved, limit=max_context_files, new_files=new_files
    )
    return _Plan(ep, base, end, touched, diags, choice.files, choice.empty_reason)


def mine_store(
    store: TimelineStore, cfg: MineConfig | None = None
) -> tuple[list[Example], dict[str, int]]:
    """Unfiltered examples of one workspace's timeline, and counts of episodes skipped by the
    duration bounds."""
    cfg = cfg or MineConfig()
    snaps = load_timeline(store)
    skipped: dict[str, int] = {}
    episodes = timeline_episodes(store, snaps, cfg, skipped)
    prefetch_trees = getattr(store, "prefetch_trees", None)
    prefetch_files = getattr(store, "prefetch_files", None)
    out = []
    for i in range(0, len(episodes), CHUNK):
        chunk = episodes[i : i + CHUNK]
        if prefetch_trees is not None:
            prefetch_trees([snaps[e.base] for e in chunk] + [snaps[e.end] for e in chunk])
        plans = [_plan(store, snaps, ep, cfg.max_context_files) for ep in chunk]
        if prefetch_files is not None:
            wanted = [(p.base, set(p.touched) | set(p.ctx_paths)) for p in plans]
            prefetch_files(wanted + [(p.end, p.touched) for p in plans])
        out += [_example(store, p) for p in plans]
    return out, skipped


def episode_example(
    store: TimelineStore, snaps: Sequence[Any], ep: Episode, max_context_files: int = 12
) -> Example:
    return _example(store, _plan(store, snaps, ep, max_context_files))


def _example(store: TimelineStore, plan: _Plan) -> Example:
    ep, base, end, touched, diags = plan.ep, plan.base, plan.end, plan.touched, plan.diags
    old = store.read_files(base, sorted(set(touched) | set(plan.ctx_paths)))
    diff = render(old, store.read_files(end, touched), touched)
    files = decode_files({p: old[p] for p in plan.ctx_paths if p in old})
    extra: dict[str, Any] = {}
    if not files:
        extra["context_empty_reason"] = plan.empty_reason or "the context files are binary"
    return Example(
        source=f"timeline:{store.workspace}",
        kind=ep.kind,
        diff=diff,
        context={"files": files, "diagnostics": diags},
        base={
            "type": "snapshot",
            "store": str(store.root),
            "workspace": str(store.workspace),
            "snapshot": base.id,
            "seq": base.seq,
        },
        stats={
            "steps": [ep.first_red if ep.kind == "fix" else ep.base, ep.end],
            "base_seq": base.seq,
            "end_seq": end.seq,
            "end_snapshot": end.id,
            "duration_s": ep.duration_s,
            "red_snapshots": ep.end - ep.first_red,
            **extra,
        },
        created_at=base.time,
    )


def _rel(store: TimelineStore, path: str) -> str:
    """Diagnostic paths are relative to the workspace (dune prints them so); normalise."""
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.relative_to(store.workspace))
        except ValueError:
            return path
    return path.removeprefix("./")
