"""The mining pipeline: sources (snapshot timelines, VCS history) → filters → dedup →
descriptions → the examples database. Library functions behind ``bactrian mine``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.dataset.example import Example
from bactrian.dataset.splits import build_dataset, dataset_stats, load_dataset_config
from bactrian.dataset.store import ExampleDB
from bactrian.errors import MiningError
from bactrian.mine.config import MineConfig
from bactrian.mine.describe import Describer, describe_examples, make_describer
from bactrian.mine.filters import MiningReport, apply_filters
from bactrian.mine.timeline import mine_store
from bactrian.mine.vcs import mine_history
from bactrian.progress import progress
from bactrian.rayutil import session
from bactrian.secrets import example_secret
from bactrian.snapshot import load_config, open_store


@dataclass
class MineResult:
    examples: list[Example] = field(default_factory=list)
    report: MiningReport = field(default_factory=MiningReport)
    stored: int = 0
    # what splitting, context and labelling did: parts merged, chains cut, empty contexts
    # (``context_empty``, and by reason), build labels, red bases with their causes
    notes: dict[str, int] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, full: bool = True) -> dict[str, Any]:
        if full:
            items = [e.to_dict() for e in self.examples]
        else:
            items = [{"id": e.id, "kind": e.kind, "diff": e.diff} for e in self.examples]
        return {
            "examples": items,
            "report": self.report.to_dict(),
            "stored": self.stored,
            "notes": dict(sorted(self.notes.items())),
            "labels": self.labels,
        }

    def merge_notes(self, notes: dict[str, int]) -> None:
        for k, v in notes.items():
            self.notes[k] = self.notes.get(k, 0) + v


def context_notes(examples: list[Example]) -> dict[str, int]:
    """How many kept examples have an empty context, by reason."""
    out: dict[str, int] = {}
    for e in examples:
        reason = e.stats.get("context_empty_reason")
        if reason:
            out["context_empty"] = out.get("context_empty", 0) + 1
            key = f"context_empty: {reason}"
            out[key] = out.get(key, 0) + 1
    return out


def finish(
    candidates: list[Example],
    skipped: dict[str, int],
    cfg: MineConfig,
    *,
    source: str,
    db: ExampleDB | None,
    describer: Describer | None,
    label: Callable[[list[Example]], Any] | None = None,
) -> MineResult:
    report = MiningReport()
    for k, v in skipped.items():
        report.dropped[k] = report.dropped.get(k, 0) + v
    for ex in candidates:
        report.episodes[ex.kind] = report.episodes.get(ex.kind, 0) + 1
    known = db.ids() if db else set()
    fresh = [e for e in candidates if e.id not in known]
    if len(fresh) < len(candidates):
        report.dropped["already_mined"] = len(candidates) - len(fresh)
    fresh = drop_secrets(fresh, report)
    kept = apply_filters(fresh, cfg, report, seen=db.hashes() if db else None)
    if describer is None:
        describer = make_describer(cfg.describer)
    counts = describe_examples(
        kept, describer, progress=lambda xs: progress(xs, "describing", "example")
    )
    report.add_prompts(kept, counts)
    labels: dict[str, Any] = {}
    if label is not None:
        got = label(kept)
        labels = dict(got) if isinstance(got, dict) else {}
    stored = db.add(kept) if db else 0
    if db:
        db.record_run(source, report.to_dict())
    result = MineResult(kept, report, stored, labels=labels)
    result.merge_notes(context_notes(kept))
    return result


def drop_secrets(
    examples: list[Example], report: MiningReport, patterns: list[str] | None = None
) -> list[Example]:
    """Drop (and count as ``secret``) every example whose diff or context carries a secret:
    a path matching the snapshotter's ``secret_patterns`` or content that looks like a key or
    token (:mod:`bactrian.secrets`) — the snapshotter's own check, for VCS history too."""

    if patterns is None:
        patterns = list(load_config().secret_patterns)
    kept = []
    for ex in examples:
        why = example_secret(ex.diff, ex.files, patterns)
        if why:
            report.candidates += 1
            report.drop("secret", ex, why)
        else:
            kept.append(ex)
    return kept


def mine_workspace_candidates(
    workspace: Path, config: MineConfig, snapshot_config: Any = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Unfiltered examples (as dicts) of one workspace's timeline: the per-workspace unit of
    work, run in-process or as a Ray task."""
    store = open_store(Path(workspace), snapshot_config)
    try:
        candidates, skipped = mine_store(store, config)
    finally:
        store.close()
    return [e.to_dict() for e in candidates], skipped


def _candidates_per_workspace(
    workspaces: list[Path], cfg: MineConfig, snapshot_config: Any, executor: str
) -> list[tuple[list[dict[str, Any]], dict[str, int]]]:
    if executor == "local":
        return [mine_workspace_candidates(ws, cfg, snapshot_config) for ws in workspaces]
    if executor != "ray":
        raise MiningError(f"Unknown mining executor {executor!r}. Available: local, ray.")
    snapshot_config = snapshot_config or load_config()
    if not snapshot_config.store_dir:  # pin the store dir: workers may see another env
        snapshot_config = dataclasses.replace(
            snapshot_config, store_dir=snapshot_config.resolved_store_dir()
        )
    with session(error=MiningError) as ray:
        task = ray.remote(num_cpus=1)(mine_workspace_candidates)
        return list(ray.get([task.remote(ws, cfg, snapshot_config) for ws in workspaces]))


def mine_workspaces(
    workspaces: Iterable[Path],
    config: MineConfig | None = None,
    *,
    db: ExampleDB | None = None,
    describer: Describer | None = None,
    snapshot_config: Any = None,
    label: Callable[[list[Example]], Any] | None = None,
    executor: str = "local",
) -> MineResult:
    """Mine the recorded timelines of ``workspaces`` (filtered, described, stored in ``db``).
    ``executor="ray"`` mines the workspaces in parallel as Ray tasks (a local Ray is started
    when none is connected); filtering, dedup and storing stay here, in order."""
    cfg = config or MineConfig()
    wss = [Path(ws) for ws in workspaces]
    total = MineResult()
    per_ws = _candidates_per_workspace(wss, cfg, snapshot_config, executor)
    for ws, (dicts, skipped) in zip(wss, per_ws, strict=True):
        res = finish(
            [Example.from_dict(d) for d in dicts],
            skipped,
            cfg,
            source=f"timeline:{ws}",
            db=db,
            describer=describer,
            label=label,
        )
        total.examples += res.examples
        total.report.merge(res.report)
        total.stored += res.stored
        total.merge_notes(res.notes)
        for k, v in res.labels.items():
            total.labels[k] = total.labels.get(k, 0) + v if isinstance(v, int) else v
    return total


def mine_vcs(
    repo: Path,
    rev_range: str,
    config: MineConfig | None = None,
    *,
    kind: str | None = None,
    db: ExampleDB | None = None,
    describer: Describer | None = None,
    label: Callable[[list[Example]], Any] | None = None,
    squash_range: bool = False,
    checker: Any = None,
) -> MineResult:
    """Mine VCS history (git ``A..B``, Mercurial revset) into change / vcs-part examples: one
    per commit, or the whole range as one change with ``squash_range``. ``checker`` (a
    :class:`bactrian.mine.vcs.PartChecker`, e.g. :class:`bactrian.mine.label.Labeller`)
    builds every part of a split commit while splitting."""
    cfg = config or MineConfig()
    notes: dict[str, int] = {}
    candidates, skipped = mine_history(
        repo, rev_range, cfg, kind=kind, squash_range=squash_range, counts=notes, checker=checker
    )
    result = finish(
        candidates, skipped, cfg, source=f"vcs:{repo}", db=db, describer=describer, label=label
    )
    result.merge_notes(notes)
    return result


def mine_to_dataset(
    workspaces: Iterable[Path],
    out: Path,
    config: MineConfig | None = None,
    *,
    db: ExampleDB | None = None,
) -> tuple[list[Example], dict[str, Any]]:
    """Mine ``workspaces`` into the examples database, build a dataset from everything mined so
    far into ``out``, and return (the examples mined now, the dataset's stats) — the demo's
    step 3."""
    own = db is None
    db = db or ExampleDB()
    try:
        result = mine_workspaces(workspaces, config, db=db)
        build_dataset(out, db.all(), load_dataset_config(), mining_reports=db.reports())
    finally:
        if own:
            db.close()
    return result.examples, dataset_stats(out)


def summary_lines(examples: list[Example], stats: dict[str, Any]) -> list[str]:
    """Human lines for the demo: one per example, then the dataset counts."""
    lines = []
    for e in examples:
        steps = e.stats.get("steps", "")
        first = e.prompt.split("\n", 1)[0]
        lines.append(f"{e.kind:<7} {str(steps):<9} {e.id}  {first}")
    by_split = ", ".join(f"{k} {v}" for k, v in sorted(stats.get("by_split", {}).items()))
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(stats.get("by_kind", {}).items()))
    lines.append(f"dataset: {stats.get('examples', 0)} examples ({by_split}; {by_kind})")
    return lines
