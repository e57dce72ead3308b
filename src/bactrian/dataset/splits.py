"""Datasets: leakage-safe splits, a manifest that records the split rule, exports (JSONL,
Hugging Face Parquet, chat messages, prompt/completion pairs), stats, and materialising an
example's base tree.

Split rule (recorded in ``manifest.json``): examples are grouped so that nothing related
straddles splits (the fix and change of one red valley share their end snapshot; the parts of
one commit share the commit). Groups are ordered by time (a commit's time is its commit date:
when the change entered the history), per source (workspace or repository) so that every
source is represented in each split where it has enough groups: the latest
``heldout_fraction`` of a source's groups go to ``heldout``, the ``rl_fraction`` before them
to ``rl``, the rest to ``train``. Whole workspaces listed in ``heldout_workspaces`` (and a
hash-chosen ``heldout_workspace_fraction`` of them) go to ``heldout``. Finally an example of
``train``/``rl`` whose normalised diff hash equals one in a later split (``rl``, ``heldout``)
is dropped, so no near-duplicate crosses splits.

Sources are chosen with :class:`Selection` (workspaces, repositories, a time range):
``bactrian dataset build --repo R --workspace W --since 2024-01-01``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bactrian import vcs
from bactrian.config import load_section
from bactrian.dataset.example import SCHEMA_VERSION, Example
from bactrian.diffs import apply_patch, normalised_hash
from bactrian.errors import DiffError, MiningError
from bactrian.extras import require
from bactrian.progress import progress
from bactrian.snapshot import Store, load_config
from bactrian.strategies import get_strategy

SPLITS = ("train", "rl", "heldout")
FORMATS = ("jsonl", "parquet", "chat", "completion", "verl", "openrlhf")
RL_DATA_SOURCE = "bactrian"  # verl's data_source: routes its rows to bactrian.train.verl


@dataclass
class DatasetConfig:
    """Section ``[dataset]``."""

    heldout_fraction: float = 0.2
    rl_fraction: float = 0.2
    heldout_workspaces: list[str] = field(default_factory=list)
    heldout_workspace_fraction: float = 0.0  # also hold out this share of workspaces (by hash)
    # time split per source (each source in each split where it has enough groups); False:
    # one time line over all sources together
    split_per_source: bool = True


@dataclass
class Selection:
    """Which mined examples a dataset is built from: examples of these sources (workspaces
    and repositories, by path; none given = every source) whose time lies in
    [``since``, ``until``)."""

    sources: list[str] = field(default_factory=list)
    since: float | None = None
    until: float | None = None

    def matches(self, ex: Example) -> bool:
        if self.sources and _norm_source(ex.workspace) not in {
            _norm_source(s) for s in self.sources
        }:
            return False
        if self.since is not None and ex.created_at < self.since:
            return False
        return not (self.until is not None and ex.created_at >= self.until)

    def to_dict(self) -> dict[str, Any]:
        return {"sources": sorted(self.sources), "since": self.since, "until": self.until}


def _norm_source(s: str) -> str:
    p = Path(s).expanduser()
    try:
        return str(p.resolve()) if p.is_absolute() or p.exists() else s
    except OSError:
        return s


def parse_time(text: str) -> float:
    """A time given by a user: seconds since the epoch, or an ISO date / date and time
    (UTC when no zone is given)."""

    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise MiningError(
            f"Cannot read the time {text!r}: give a date (2024-05-31), a date and time "
            "(2024-05-31T12:00) or seconds since the epoch."
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def select_examples(examples: list[Example], selection: Selection | None) -> list[Example]:
    """The examples ``selection`` chooses; a named source with no examples is an error that
    lists the sources there are."""
    if selection is None:
        return list(examples)
    known = {_norm_source(e.workspace) for e in examples}
    missing = [s for s in selection.sources if _norm_source(s) not in known]
    if missing:
        listed = ", ".join(sorted(known)) or "none"
        raise MiningError(
            f"No mined examples from {', '.join(missing)}. Sources mined so far: {listed} "
            "(`bactrian dataset sources` lists them with counts)."
        )
    return [e for e in examples if selection.matches(e)]


def prompt_source(ex: Example) -> str:
    """Where an example's prompt came from (commit-message, diagnostics, llm, diff-summary,
    …); ``unknown`` for examples mined before prompts recorded it."""
    value = getattr(ex, "prompt_source", None) or ex.stats.get("prompt_source")
    return str(value) if value else "unknown"


def source_summary(examples: list[Example]) -> list[dict[str, Any]]:
    """One row per source: its examples, kinds and time range."""
    rows: dict[str, dict[str, Any]] = {}
    for e in examples:
        r = rows.setdefault(
            e.workspace,
            {"source": e.workspace, "type": e.base.get("type", "?"), "examples": 0, "kinds": {}},
        )
        r["examples"] += 1
        r["kinds"][e.kind] = r["kinds"].get(e.kind, 0) + 1
        r["first"] = min(r.get("first", e.created_at), e.created_at)
        r["last"] = max(r.get("last", e.created_at), e.created_at)
    return [rows[k] for k in sorted(rows)]


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
    lines: dict[str, list[list[Example]]] = {}
    for g in groups.values():
        if g[0].workspace not in held_ws:
            lines.setdefault(g[0].workspace if cfg.split_per_source else "", []).append(g)
    cutoffs: dict[str, float] = {}
    for line_key, line in sorted(lines.items()):
        timed = sorted(line, key=lambda g: (min(e.created_at for e in g), g[0].id))
        n = len(timed)
        n_held = math.ceil(n * cfg.heldout_fraction) if n > 1 else 0
        n_rl = math.ceil(n * cfg.rl_fraction) if n > 2 else 0
        n_rl = min(n_rl, n - n_held)
        cut_rl, cut_held = n - n_held - n_rl, n - n_held
        for i, g in enumerate(timed):
            split = "train" if i < cut_rl else "rl" if i < cut_held else "heldout"
            for ex in g:
                ex.split = split
        if cut_held < n:
            cutoffs[line_key or "all"] = min(min(e.created_at for e in g) for g in timed[cut_held:])
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
    cutoff = min(cutoffs.values(), default=None)
    rule = {
        "method": "time+workspace",
        "time": "commit date (VCS) / snapshot time",
        "split_per_source": cfg.split_per_source,
        "heldout_from_time_by_source": dict(sorted(cutoffs.items())),
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
    selection: Selection | None = None,
) -> dict[str, Any]:
    """Write ``out/examples.jsonl``, one ``out/<split>.jsonl`` per split and
    ``out/manifest.json`` from the examples ``selection`` chooses (default: all); returns
    the manifest."""
    if not examples:
        raise MiningError(
            "No mined examples to build a dataset from. Run `bactrian mine WORKSPACE` or "
            "`bactrian mine --from-vcs REPO --range A..B` first."
        )
    examples = select_examples(list(examples), selection)
    if not examples:
        raise MiningError(
            f"No mined example matches the selection {selection.to_dict() if selection else {}}"
            "; widen the time range or name other sources (`bactrian dataset sources`)."
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kept, rule = assign_splits(list(examples), cfg)
    kept.sort(key=lambda e: (e.created_at, e.id))
    _write_jsonl(out / "examples.jsonl", [e.to_dict() for e in kept])
    for split in SPLITS:
        _write_jsonl(out / f"{split}.jsonl", [e.to_dict() for e in kept if e.split == split])
    filters: Counter[str] = Counter()
    chosen = {_norm_source(e.workspace) for e in kept}
    for rep in mining_reports or []:
        src = str(rep.get("source", ""))
        src_path = src.split(":", 1)[1] if ":" in src else ""
        if selection and selection.sources and src_path and _norm_source(src_path) not in chosen:
            continue  # the filters of runs over sources not in this dataset
        filters.update(rep.get("report", rep).get("dropped", {}))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created_at": time.time(),
        "examples": len(kept),
        "counts": _counts(kept),
        "split_rule": rule,
        "selection": (selection or Selection()).to_dict(),
        "sources": source_summary(kept),
        "filters": dict(sorted(filters.items())),
        "files": ["examples.jsonl", *[f"{s}.jsonl" for s in SPLITS]],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _counts(examples: list[Example]) -> dict[str, Any]:
    sources = sorted({e.workspace for e in examples})
    return {
        "by_split": dict(Counter(e.split or "none" for e in examples)),
        "by_kind": dict(Counter(e.kind for e in examples)),
        "by_source": dict(sorted(Counter(e.workspace for e in examples).items())),
        "by_prompt_source": dict(sorted(Counter(prompt_source(e) for e in examples).items())),
        "by_split_kind": {
            s: dict(Counter(e.kind for e in examples if e.split == s)) for s in SPLITS
        },
        "by_source_split": {
            src: dict(Counter(e.split or "none" for e in examples if e.workspace == src))
            for src in sources
        },
        "by_split_prompt_source": {
            s: dict(Counter(prompt_source(e) for e in examples if e.split == s)) for s in SPLITS
        },
    }


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:

    with path.open("w") as fh:
        for row in progress(rows, f"writing {path.name}", "example"):
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


def list_examples(
    path: Path,
    *,
    split: str | None = None,
    kind: str | None = None,
    source: str | None = None,
    prompt_from: str | None = None,
    grep: str | None = None,
) -> list[Example]:
    """The examples of the dataset in ``path`` that match every filter given (``source``: a
    substring of the workspace/repository path; ``grep``: a substring of the prompt)."""
    _, examples = load_dataset(path)
    out = []
    for e in examples:
        if split and e.split != split:
            continue
        if kind and e.kind != kind:
            continue
        if source and source not in e.workspace:
            continue
        if prompt_from and prompt_source(e) != prompt_from:
            continue
        if grep and grep.lower() not in (e.prompt or e.description).lower():
            continue
        out.append(e)
    return out


def format_example(ex: Example) -> str:
    """An example for a person to read: what it is, its prompt, its context files, its diff."""
    lines = [
        f"id:      {ex.id}",
        f"kind:    {ex.kind}    split: {ex.split}    prompt from: {prompt_source(ex)}",
        f"source:  {ex.workspace}"
        + (f" @ {ex.base['commit'][:12]}" if ex.base.get("commit") else ""),
        f"time:    {time.strftime('%Y-%m-%d %H:%M', time.gmtime(ex.created_at))} UTC",
        "",
        "prompt:",
        *(f"  {line}" for line in (ex.prompt or "(none)").splitlines()),
    ]
    if ex.description and ex.description != ex.prompt:
        lines += ["", "description:", *(f"  {x}" for x in ex.description.splitlines())]
    files = ex.files
    lines += ["", f"context: {len(files)} file(s)"]
    lines += [f"  {p} ({len(t.splitlines())} lines)" for p, t in files.items()]
    for d in ex.diagnostics:
        lines.append(
            f"  diagnostic: {d.get('file', '?')}:{d.get('line', '?')}: "
            + str(d.get("message", "")).strip()
        )
    lines += ["", "diff:", ex.diff.rstrip("\n")]
    return "\n".join(lines)


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
    """Export every split in ``fmt`` (jsonl, parquet, chat, completion, verl, openrlhf)
    under ``out`` (default ``path/export/<fmt>``); returns the files written.

    ``verl``: ``<split>.parquet`` with verl's columns — ``data_source``, ``prompt`` (chat
    messages), ``ability``, ``reward_model`` ``{style, ground_truth}`` (the gold diff) and
    ``extra_info`` ``{example_id, dataset, split, index}``, which is how
    ``bactrian.train.verl:compute_score`` finds the example's base. ``openrlhf``:
    ``<split>.jsonl`` rows ``{"input": messages, "label": example_id}`` (``--input_key input
    --label_key label --apply_chat_template``)."""
    if fmt not in FORMATS:
        raise MiningError(f"Unknown export format {fmt!r}. Available: {', '.join(FORMATS)}.")
    _, examples = load_dataset(path)
    out = Path(out) if out else Path(path) / "export" / fmt
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split in SPLITS:
        rows = [e for e in examples if e.split == split]
        if fmt == "verl":
            datasets = require("datasets", "data", what="verl export")
            target = out / f"{split}.parquet"
            if not rows:
                continue
            root = str(Path(path).resolve())
            datasets.Dataset.from_list(
                [_verl_row(e, i, root) for i, e in enumerate(rows)]
            ).to_parquet(str(target))
        elif fmt == "parquet":
            datasets = require("datasets", "data", what="Parquet export")
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
            elif fmt == "openrlhf":
                data = [{"input": render_chat(e)[:2], "label": e.id} for e in rows]
            else:
                data = [{"id": e.id, **render_completion(e)} for e in rows]
            _write_jsonl(target, data)
        written.append(target)
    return written


def _verl_row(ex: Example, index: int, dataset: str) -> dict[str, Any]:
    return {
        "data_source": RL_DATA_SOURCE,
        "prompt": render_chat(ex)[:2],  # system + user: the model writes the assistant turn
        "ability": "code",
        "reward_model": {"style": "rule", "ground_truth": ex.diff},
        "extra_info": {"example_id": ex.id, "dataset": dataset, "split": ex.split, "index": index},
    }


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
        store = Store(Path(ex.base["workspace"]), Path(ex.base["store"]), load_config())
        try:
            store.materialize(store.get(ex.base["snapshot"]), dest)
        finally:
            store.close()
    elif kind in ("git", "hg"):
        if ex.base.get("rev"):
            vcs.archive(
                Path(ex.base["repo"]).resolve(), kind, ex.base["rev"], dest, error=MiningError
            )
        if ex.base.get("pre_diff"):
            try:  # a mined diff: strict, and refused if it would write outside dest
                apply_patch(dest, ex.base["pre_diff"]).raise_for_status()
            except DiffError as exc:
                raise MiningError(f"cannot apply the base's pre_diff of {ex.id}: {exc}") from exc
    else:
        raise MiningError(f"Example {ex.id} has no base tree reference (base={ex.base!r}).")
    return dest
