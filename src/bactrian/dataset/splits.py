"""Datasets: leakage-safe splits, a manifest that records the split rule, exports (JSONL,
Hugging Face Parquet, chat messages, prompt/completion pairs), stats, and materialising an
example's base tree.

Split rule (recorded in ``manifest.json``): examples are grouped so that nothing related
straddles splits (the fix and change of one red valley share their end snapshot; the parts of
one commit share the commit). Groups are ordered by time: the latest ``heldout_fraction`` go to
``heldout``, the ``rl_fraction`` before them to ``rl``, the rest to ``train``. Whole workspaces
listed in ``heldout_workspaces`` (and a hash-chosen ``heldout_workspace_fraction`` of them) go
to ``heldout``. Finally an example of ``train``/``rl`` whose
normalised diff hash equals one in a later split (``rl``, ``heldout``) is dropped, so no
near-duplicate crosses splits.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bactrian.config import load_section
from bactrian.dataset.example import SCHEMA_VERSION, Example
from bactrian.errors import MiningError
from bactrian.mine.filemap import apply_to_dir
from bactrian.mine.textdiff import normalised_hash

SPLITS = ("train", "rl", "heldout")
FORMATS = ("jsonl", "parquet", "chat", "completion")


@dataclass
class DatasetConfig:
    """Section ``[dataset]``."""

    heldout_fraction: float = 0.2
    rl_fraction: float = 0.2
    heldout_workspaces: list[str] = field(default_factory=list)
    heldout_workspace_fraction: float = 0.0  # also hold out this share of workspaces (by hash)


def load_dataset_config(**overrides: Any) -> DatasetConfig:
    return load_section(DatasetConfig, "dataset", overrides=overrides)


def group_key(ex: Example) -> str:
    if ex.base.get("type") == "snapshot":
        return f"{ex.workspace}@{ex.stats.get('end_snapshot', ex.base.get('snapshot'))}"
    if ex.base.get("commit"):
        return f"{ex.workspace}@{ex.base['commit']}"
    return ex.id


def assign_splits(
    examples: list[Example], cfg: DatasetConfig | None = None
) -> tuple[list[Example], dict[str, Any]]:
    """Set ``split`` on each example (returns the kept ones and what the rule did)."""
    cfg = cfg or DatasetConfig()
    if not 0 <= cfg.heldout_fraction + cfg.rl_fraction <= 1:
        raise MiningError("[dataset] heldout_fraction + rl_fraction must lie between 0 and 1.")
    groups: dict[str, list[Example]] = {}
    for ex in examples:
        groups.setdefault(group_key(ex), []).append(ex)
    held_ws = set(cfg.heldout_workspaces) | _hashed_workspaces(
        {e.workspace for e in examples}, cfg.heldout_workspace_fraction
    )
    timed = sorted(
        (g for g in groups.values() if g[0].workspace not in held_ws),
        key=lambda g: (min(e.created_at for e in g), g[0].id),
    )
    n = len(timed)
    n_held = math.ceil(n * cfg.heldout_fraction) if n > 1 else 0
    n_rl = math.ceil(n * cfg.rl_fraction) if n > 2 else 0
    n_rl = min(n_rl, n - n_held)
    cut_rl, cut_held = n - n_held - n_rl, n - n_held
    for i, g in enumerate(timed):
        split = "train" if i < cut_rl else "rl" if i < cut_held else "heldout"
        for ex in g:
            ex.split = split
    for g in groups.values():
        if g[0].workspace in held_ws:
            for ex in g:
                ex.split = "heldout"
    later: dict[str, set[str]] = {"rl": set(), "heldout": set()}
    for ex in examples:
        if ex.split in later:
            later[ex.split].add(normalised_hash(ex.diff))
    kept, dropped = [], 0
    for ex in examples:
        h = normalised_hash(ex.diff)
        blocked = (ex.split == "train" and (h in later["rl"] or h in later["heldout"])) or (
            ex.split == "rl" and h in later["heldout"]
        )
        if blocked:
            dropped += 1
        else:
            kept.append(ex)
    cutoff = min((min(e.created_at for e in g) for g in timed[cut_held:]), default=None)
    rule = {
        "method": "time+workspace",
        "grouping": "red valley (end snapshot) / commit",
        "heldout_fraction": cfg.heldout_fraction,
        "rl_fraction": cfg.rl_fraction,
        "heldout_workspaces": sorted(held_ws),
        "heldout_workspace_fraction": cfg.heldout_workspace_fraction,
        "heldout_from_time": cutoff,
        "cross_split_near_duplicates_dropped": dropped,
        "text": __doc__.split("Split rule", 1)[1].split("\n\n")[0].strip() if __doc__ else "",
    }
    return kept, rule


def _hashed_workspaces(workspaces: set[str], fraction: float) -> set[str]:
    """A stable choice of ``fraction`` of ``workspaces`` (by hash, never all of them)."""
    if fraction <= 0 or len(workspaces) < 2:
        return set()
    n = min(len(workspaces) - 1, math.ceil(len(workspaces) * fraction))
    ranked = sorted(workspaces, key=lambda w: hashlib.sha256(w.encode()).hexdigest())
    return set(ranked[:n])


def build_dataset(
    out: Path,
    examples: list[Example],
    cfg: DatasetConfig | None = None,
    *,
    mining_reports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write ``out/examples.jsonl``, one ``out/<split>.jsonl`` per split and
    ``out/manifest.json``; returns the manifest."""
    if not examples:
        raise MiningError(
            "No mined examples to build a dataset from. Run `bactrian mine WORKSPACE` or "
            "`bactrian mine --from-vcs REPO --range A..B` first."
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kept, rule = assign_splits(list(examples), cfg)
    kept.sort(key=lambda e: (e.created_at, e.id))
    _write_jsonl(out / "examples.jsonl", [e.to_dict() for e in kept])
    for split in SPLITS:
        _write_jsonl(out / f"{split}.jsonl", [e.to_dict() for e in kept if e.split == split])
    filters: Counter[str] = Counter()
    for rep in mining_reports or []:
        filters.update(rep.get("report", rep).get("dropped", {}))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created_at": time.time(),
        "examples": len(kept),
        "counts": _counts(kept),
        "split_rule": rule,
        "filters": dict(sorted(filters.items())),
        "files": ["examples.jsonl", *[f"{s}.jsonl" for s in SPLITS]],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _counts(examples: list[Example]) -> dict[str, Any]:
    return {
        "by_split": dict(Counter(e.split or "none" for e in examples)),
        "by_kind": dict(Counter(e.kind for e in examples)),
        "by_split_kind": {
            s: dict(Counter(e.kind for e in examples if e.split == s)) for s in SPLITS
        },
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")


def load_dataset(path: Path) -> tuple[dict[str, Any], list[Example]]:
    path = Path(path)
    mf = path / "manifest.json"
    if not mf.exists():
        raise MiningError(
            f"{path} is not a bactrian dataset (no manifest.json). Build one with "
            f"`bactrian dataset build --out {path}`."
        )
    manifest = json.loads(mf.read_text())
    with (path / "examples.jsonl").open() as fh:
        examples = [Example.from_dict(json.loads(line)) for line in fh if line.strip()]
    return manifest, examples


def dataset_stats(path: Path) -> dict[str, Any]:
    manifest, examples = load_dataset(path)
    return {
        "examples": len(examples),
        **_counts(examples),
        "filters": manifest.get("filters", {}),
        "split_rule": manifest.get("split_rule", {}),
        "schema_version": manifest.get("schema_version"),
    }


def show_example(path: Path, example_id: str) -> Example:
    _, examples = load_dataset(path)
    matches = [e for e in examples if e.id == example_id or e.id.startswith(example_id)]
    if len(matches) != 1:
        what = "No" if not matches else f"{len(matches)}"
        raise MiningError(
            f"{what} example(s) match {example_id!r} in {path}; `bactrian dataset stats {path}` "
            "and the examples.jsonl file list the ids."
        )
    return matches[0]


def _strategy() -> Any:
    from bactrian.strategies import get_strategy

    return get_strategy()


SYSTEM_PROMPT: str = _strategy().system


def render_user(ex: Example) -> str:
    """The user turn as the default prompt strategy lays it out (no token budget)."""
    return str(_strategy().render_input(ex).messages[1]["content"])


def render_chat(ex: Example) -> list[dict[str, str]]:
    """The example as chat messages (system, user with context and prompt, assistant diff),
    rendered by the default prompt strategy (:mod:`bactrian.strategies`), the same object
    that lays out evaluation and sidecar prompts."""
    return list(_strategy().sft_messages(ex))


def render_completion(ex: Example) -> dict[str, str]:
    return {"prompt": f"{SYSTEM_PROMPT}\n\n{render_user(ex)}\n\nDiff:\n", "completion": ex.diff}


def export_dataset(path: Path, fmt: str, out: Path | None = None) -> list[Path]:
    """Export every split in ``fmt`` (jsonl, parquet, chat, completion) under ``out``
    (default ``path/export/<fmt>``); returns the files written."""
    if fmt not in FORMATS:
        raise MiningError(f"Unknown export format {fmt!r}. Available: {', '.join(FORMATS)}.")
    _, examples = load_dataset(path)
    out = Path(out) if out else Path(path) / "export" / fmt
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split in SPLITS:
        rows = [e for e in examples if e.split == split]
        if fmt == "parquet":
            import datasets

            target = out / f"{split}.parquet"
            flat = [_flat(e) for e in rows]
            if not flat:
                continue
            datasets.Dataset.from_list(flat).to_parquet(str(target))
        else:
            target = out / f"{split}.jsonl"
            if fmt == "jsonl":
                data = [e.to_dict() for e in rows]
            elif fmt == "chat":
                data = [{"id": e.id, "messages": render_chat(e)} for e in rows]
            else:
                data = [{"id": e.id, **render_completion(e)} for e in rows]
            _write_jsonl(target, data)
        written.append(target)
    return written


def _flat(ex: Example) -> dict[str, Any]:
    """Parquet-friendly row: nested dicts with free-form keys become JSON strings."""
    d = asdict(ex)
    for key in ("context", "base", "stats"):
        d[key] = json.dumps(d[key], sort_keys=True)
    d["messages"] = render_chat(ex)
    return d


def materialize_base(ex: Example, dest: Path) -> Path:
    """Write the tree ``ex.diff`` applies to into ``dest`` (new or empty directory)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise MiningError(f"{dest} is not empty; materialise a base into a new directory.")
    dest.mkdir(parents=True, exist_ok=True)
    kind = ex.base.get("type")
    if kind == "snapshot":
        from bactrian.snapshot import Store, load_config

        store = Store(Path(ex.base["workspace"]), Path(ex.base["store"]), load_config())
        try:
            store.materialize(store.get(ex.base["snapshot"]), dest)
        finally:
            store.close()
    elif kind in ("git", "hg"):
        from bactrian.mine.vcs import open_vcs

        if ex.base.get("rev"):
            open_vcs(Path(ex.base["repo"]), kind).archive(ex.base["rev"], dest)
        if ex.base.get("pre_diff"):
            apply_to_dir(dest, ex.base["pre_diff"])
    else:
        raise MiningError(f"Example {ex.id} has no base tree reference (base={ex.base!r}).")
    return dest
