"""Data-quality figures of a set of mined examples — what a model would be trained on. One
definition for ``bactrian quickstart`` and ``benchmarks/bench_data_quality.py``:

* the share of prompts by source (``prompt_source``: commit-message, diagnostics, llm,
  diff-summary, …; ``unknown`` where the miner did not record it);
* the share of "update FILE" prompts (goal ≤ 5%) and of examples with no context (goal ≤ 2%);
* leak-audit hits: prompts that copy new code or name identifiers only the answer introduces
  (the miner's own audit, goal 0);
* for labelled examples (``stats["target_build"]``): the share whose gold diff leaves its base
  green (validity, goal ≥ 95%), of bases that are green, and of split parts that build.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from bactrian.dataset.example import Example
from bactrian.dataset.splits import prompt_source
from bactrian.mine.describe import audit_leaks

UPDATE_FILE = re.compile(
    r"^\s*(?:update|change|edit|modify)\s+[\w./-]+(?:\s*,\s*[\w./-]+)*\s*$", re.I
)


def share(n: int, total: int) -> float:
    return n / total if total else 0.0


def is_update_file(prompt: str) -> bool:
    """Is the prompt's first line only "update FILE" (the describer's last resort)?"""
    first = (prompt or "").strip().split("\n", 1)[0]
    return bool(UPDATE_FILE.match(first))


def figures(examples: list[Example], *, commits: int | None = None) -> dict[str, Any]:
    """The data-quality figures of ``examples`` (mined from ``commits`` commits, if known)."""
    n = len(examples)
    sources = Counter(prompt_source(e) for e in examples)
    leaks = {e.id: audit_leaks(e) for e in examples}
    out: dict[str, Any] = {
        "examples": n,
        "kinds": dict(sorted(Counter(e.kind for e in examples).items())),
        "prompt_sources": {k: share(v, n) for k, v in sorted(sources.items())},
        "prompt_source_counts": dict(sorted(sources.items())),
        "update_file_share": share(sum(is_update_file(e.prompt) for e in examples), n),
        "empty_context": sum(not e.files for e in examples),
        "empty_context_share": share(sum(not e.files for e in examples), n),
        "leak_hits": sum(1 for v in leaks.values() if v),
        "leaks": {k: v for k, v in leaks.items() if v},
    }
    if commits is not None:
        out["commits"] = commits
        out["per_100_commits"] = 100 * share(n, commits)
    labelled = [e for e in examples if e.stats.get("target_build")]
    if labelled:
        out.update(label_figures(labelled))
    return out


def label_figures(labelled: list[Example]) -> dict[str, Any]:
    """Validity figures of examples labelled with real builds."""
    parts = [e for e in labelled if e.kind == "vcs-part"]
    targets = Counter(str(e.stats.get("target_build")) for e in labelled)
    return {
        "labelled": len(labelled),
        "target_builds": dict(sorted(targets.items())),
        "gold_green": targets.get("green", 0),
        "gold_green_share": share(targets.get("green", 0), len(labelled)),
        "base_green_share": share(
            sum(e.stats.get("base_build") == "green" for e in labelled), len(labelled)
        ),
        "parts": len(parts),
        "parts_green_share": (
            share(sum(e.stats.get("target_build") == "green" for e in parts), len(parts))
            if parts
            else None
        ),
    }


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def figure_lines(f: dict[str, Any]) -> list[str]:
    """The figures as lines for a person."""
    lines = [
        "prompt sources: "
        + (", ".join(f"{k} {pct(v)}" for k, v in f["prompt_sources"].items()) or "none"),
        f'"update FILE" prompts: {pct(f["update_file_share"])} (goal ≤ 5%); empty context: '
        f"{f['empty_context']} ({pct(f['empty_context_share'])}, goal ≤ 2%); leak-audit hits: "
        f"{f['leak_hits']} (goal 0)",
    ]
    if "gold_green_share" in f:
        parts = (
            f"; split parts green {pct(f['parts_green_share'])} of {f['parts']}"
            if f["parts"]
            else ""
        )
        lines.append(
            f"validity (real builds): gold diff green {f['gold_green']}/{f['labelled']} "
            f"({pct(f['gold_green_share'])}, goal ≥ 95%); base green "
            f"{pct(f['base_green_share'])}{parts}"
        )
    return lines
