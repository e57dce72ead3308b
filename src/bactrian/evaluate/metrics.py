"""Evaluation statistics: the unbiased pass@k estimator, the stage funnel and breakdowns of a
run's results, and the paired comparison of two runs (bootstrap confidence interval of the
difference, exact McNemar sign test)."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

FUNNEL = ("well_formed", "apply", "parse", "typecheck", "build", "test")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one example with ``c`` correct among ``n`` samples:
    ``1 - C(n-c, k) / C(n, k)`` (Chen et al. 2021), computed as a stable product."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per example, got {n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def bootstrap_ci(
    values: Sequence[float], *, iters: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (paired differences)."""
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(iters))
    lo = means[int(math.floor(alpha / 2 * (iters - 1)))]
    hi = means[int(math.ceil((1 - alpha / 2) * (iters - 1)))]
    return (lo, hi)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar (sign) test p-value for ``b`` and ``c`` discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def sample_stages(row: dict[str, Any]) -> dict[str, bool]:
    """How far one sample got: each funnel step True when it and every step before passed."""
    out = dict.fromkeys(FUNNEL, False)
    if not row.get("well_formed"):
        return out
    out["well_formed"] = True
    stages = row.get("stages") or {}
    for name in FUNNEL[1:]:
        if stages.get(name) not in ("passed", "skipped"):
            break
        out[name] = True
    return out


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def summarize(
    rows: Iterable[dict[str, Any]], *, samples: int, gold: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The run's metrics from its result rows (infra errors are counted, never as failures)."""
    rows = list(rows)
    judged = [r for r in rows if r["status"] != "infra-error"]
    infra = [r for r in rows if r["status"] == "infra-error"]
    by_example: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in judged:
        by_example[r["example"]].append(r)
    funnel_counts = dict.fromkeys(FUNNEL, 0)
    for r in judged:
        for name, ok in sample_stages(r).items():
            funnel_counts[name] += ok
    n_samples = len(judged)
    ks = [k for k in (1, 2, 4, 8, 16, 32) if k <= samples]
    pass_k: dict[str, float] = {}
    for k in ks:
        vals = [
            pass_at_k(len(rs), sum(r["passed"] for r in rs), k)
            for rs in by_example.values()
            if len(rs) >= k
        ]
        pass_k[str(k)] = sum(vals) / len(vals) if vals else 0.0

    def breakdown(key: str) -> dict[str, dict[str, Any]]:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in judged:
            if r.get(key):
                groups[str(r[key])].append(r)
        return {
            g: {
                "samples": len(rs),
                "examples": len({r["example"] for r in rs}),
                "pass_rate": _rate(sum(r["passed"] for r in rs), len(rs)),
                "funnel": {s: _rate(sum(sample_stages(r)[s] for r in rs), len(rs)) for s in FUNNEL},
            }
            for g, rs in sorted(groups.items())
        }

    lat = [r["latency_s"] for r in judged if r.get("latency_s") is not None]
    ttft = [r["ttft_s"] for r in judged if r.get("ttft_s") is not None]
    toks_in = [r.get("tokens_in", 0) for r in judged]
    toks_out = [r.get("tokens_out", 0) for r in judged]
    lenient = sum(1 for r in judged if "lenient-apply" in (r.get("flags") or []))
    strict = sum(1 for r in judged if sample_stages(r)["apply"]) - lenient
    return {
        "examples": len(by_example),
        "samples": n_samples,
        "samples_per_example": samples,
        "infra_errors": len(infra),
        "not_code_changes": sum(1 for r in judged if not r.get("well_formed")),
        "funnel": {s: _rate(c, n_samples) for s, c in funnel_counts.items()},
        "funnel_counts": funnel_counts,
        "applies_strict": _rate(strict, n_samples),
        "applies_lenient": _rate(lenient, n_samples),
        "pass_at_k": pass_k,
        "pass@1": pass_k.get("1", 0.0),
        "latency_s": {
            "mean": sum(lat) / len(lat) if lat else 0.0,
            "p50": _quantile(lat, 0.5),
            "p90": _quantile(lat, 0.9),
        },
        "ttft_s": {"mean": sum(ttft) / len(ttft) if ttft else None},
        "tokens_in": {"mean": sum(toks_in) / len(toks_in) if toks_in else 0.0},
        "tokens_out": {"mean": sum(toks_out) / len(toks_out) if toks_out else 0.0},
        "prompts_cut": sum(1 for r in judged if r.get("cut")),
        "by_kind": breakdown("kind"),
        "by_error_class": breakdown("error_class"),
        "gold": gold or {},
    }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def per_example_pass(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{example: {"rate": share of samples passed, "first": sample 0 passed}}``."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["status"] != "infra-error":
            groups[r["example"]].append(r)
    out = {}
    for ex, rs in groups.items():
        rs.sort(key=lambda r: r["sample"])
        out[ex] = {"rate": sum(r["passed"] for r in rs) / len(rs), "first": bool(rs[0]["passed"])}
    return out


def compare(
    rows_a: Iterable[dict[str, Any]], rows_b: Iterable[dict[str, Any]], *, seed: int = 0
) -> dict[str, Any]:
    """Paired comparison of run B against run A over the same examples. Raises ValueError
    when the runs cover different examples."""
    a, b = per_example_pass(rows_a), per_example_pass(rows_b)
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise ValueError(
            f"the runs evaluated different examples ({len(only_a)} only in A, {len(only_b)} "
            f"only in B, e.g. {(only_a + only_b)[:3]}); compare runs over the same dataset, "
            "split and --limit"
        )
    ids = sorted(a)
    diffs = [b[i]["rate"] - a[i]["rate"] for i in ids]
    lo, hi = bootstrap_ci(diffs, seed=seed)
    b_only = sum(1 for i in ids if b[i]["first"] and not a[i]["first"])
    a_only = sum(1 for i in ids if a[i]["first"] and not b[i]["first"])
    return {
        "examples": len(ids),
        "pass_rate_a": sum(a[i]["rate"] for i in ids) / len(ids) if ids else 0.0,
        "pass_rate_b": sum(b[i]["rate"] for i in ids) / len(ids) if ids else 0.0,
        "difference": sum(diffs) / len(diffs) if diffs else 0.0,
        "ci95": [lo, hi],
        "a_only": a_only,
        "b_only": b_only,
        "mcnemar_p": mcnemar_exact(a_only, b_only),
        "per_example": {i: {"a": a[i]["rate"], "b": b[i]["rate"]} for i in ids},
    }
