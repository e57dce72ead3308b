"""The statistics, each checked against a value computed another way in the test."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bactrian.evaluate.metrics import (
    bootstrap_ci,
    compare,
    mcnemar_exact,
    pass_at_k,
    summarize,
)


def pass_at_k_by_enumeration(n: int, c: int, k: int) -> Fraction:
    """The share of all k-subsets of the n samples that contain at least one correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    hits = sum(1 for s in subsets if any(samples[i] for i in s))
    return Fraction(hits, len(subsets))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n)))
)
def test_pass_at_k_equals_the_subset_enumeration(nck: tuple[int, int, int]) -> None:
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(float(pass_at_k_by_enumeration(n, c, k)), abs=1e-12)


def test_pass_at_k_known_values_and_errors() -> None:
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 1, 5) == 1.0
    assert pass_at_k(200, 10, 100) == pytest.approx(1 - math.comb(190, 100) / math.comb(200, 100))
    with pytest.raises(ValueError, match="at least 4 samples"):
        pass_at_k(2, 1, 4)


def mcnemar_by_binomial_sum(b: int, c: int) -> float:
    """Two-sided exact binomial test with p = 1/2: the probability of outcomes at most as
    likely as the observed one."""
    n = b + c
    probs = [Fraction(math.comb(n, i), 2**n) for i in range(n + 1)]
    observed = probs[b]
    return float(min(Fraction(1), sum(p for p in probs if p <= observed)))


@pytest.mark.parametrize("b,c", [(0, 0), (1, 9), (9, 1), (3, 3), (0, 6), (5, 12), (20, 7)])
def test_mcnemar_exact_matches_the_binomial_test(b: int, c: int) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(mcnemar_by_binomial_sum(b, c), rel=1e-12)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)


def test_bootstrap_interval_agrees_with_an_independent_resampler() -> None:
    rng = random.Random(42)
    values = [rng.choice([-1.0, 0.0, 0.0, 0.5, 1.0]) for _ in range(60)]
    lo, hi = bootstrap_ci(values, iters=4000, seed=1)
    # an independent percentile bootstrap (another generator) and the normal approximation
    other = random.Random(7)
    means = sorted(sum(other.choice(values) for _ in values) / len(values) for _ in range(4000))
    lo2, hi2 = means[int(0.025 * 3999)], means[int(math.ceil(0.975 * 3999))]
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) / math.sqrt(
        len(values)
    )
    assert lo < mean < hi
    assert lo == pytest.approx(lo2, abs=0.04) and hi == pytest.approx(hi2, abs=0.04)
    assert lo == pytest.approx(mean - 1.96 * sd, abs=0.05)
    assert hi == pytest.approx(mean + 1.96 * sd, abs=0.05)
    assert bootstrap_ci([0.25] * 10) == (0.25, 0.25)


def row(ex: str, i: int, passed: bool, *, status: str = "judged", well: bool = True) -> dict:
    stages = {s: "passed" for s in ("apply", "parse", "typecheck", "build", "test")}
    if not passed:
        stages["test"] = "failed"
    return {
        "example": ex,
        "sample": i,
        "passed": passed,
        "status": status,
        "well_formed": well,
        "stages": stages if well else {},
        "kind": "fix" if ex.startswith("f") else "change",
        "error_class": "unbound" if ex.startswith("f") else None,
        "latency_s": 1.0,
    }


def test_summary_counts_infra_errors_apart_and_pass_at_k_per_example() -> None:
    rows = [
        row("f1", 0, True),
        row("f1", 1, False),
        row("f1", 2, False),
        row("c1", 0, False),
        row("c1", 1, False, well=False),
        row("c1", 2, False, status="infra-error"),
    ]
    s = summarize(rows, samples=3)
    assert s["infra_errors"] == 1 and s["samples"] == 5
    # f1: 1 of 3 correct; c1: 0 of its 2 judged samples
    assert s["pass_at_k"]["1"] == pytest.approx((1 / 3 + 0) / 2)
    assert s["pass_at_k"]["2"] == pytest.approx((float(pass_at_k_by_enumeration(3, 1, 2)) + 0) / 2)
    assert s["not_code_changes"] == 1
    assert s["funnel"]["well_formed"] == pytest.approx(4 / 5)
    assert s["funnel"]["test"] == pytest.approx(1 / 5)
    assert s["by_error_class"]["unbound"]["pass_rate"] == pytest.approx(1 / 3)
    assert set(s["by_kind"]) == {"fix", "change"}


def test_compare_is_paired_and_refuses_other_examples() -> None:
    a = [row("e1", 0, True), row("e2", 0, False), row("e3", 0, False), row("e4", 0, True)]
    b = [row("e1", 0, True), row("e2", 0, True), row("e3", 0, True), row("e4", 0, False)]
    c = compare(a, b, seed=3)
    assert (c["a_only"], c["b_only"]) == (1, 2)
    assert c["difference"] == pytest.approx(0.25)
    assert c["mcnemar_p"] == pytest.approx(mcnemar_by_binomial_sum(1, 2))
    assert c["ci95"][0] <= 0.25 <= c["ci95"][1]
    with pytest.raises(ValueError, match="different examples"):
        compare(a, b[:3])
