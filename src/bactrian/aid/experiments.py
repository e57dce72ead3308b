"""Arms and the statistics that compare them.

Assignment is sticky: a user's arm in an experiment is a pure function of (user,
experiment) — a SHA-256 of both mapped onto the arms' cumulative weights — so every restart,
every machine and every editor puts a user in the same arm; config ``pins`` override it.

Statistics (no SciPy needed): Wilson score intervals for each arm's rates, Newcombe's
hybrid score interval for the difference of two proportions, the pooled two-proportion
z-test (two-sided p-value), and nearest-rank latency percentiles.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from bactrian.aid.config import AidConfig, Arm, Experiment, parse_experiments

Z95 = 1.959963984540054


def active_experiment(cfg: AidConfig) -> Experiment | None:
    exps = parse_experiments(cfg.experiments, cfg.model)
    if cfg.experiment:
        return exps[cfg.experiment]
    if len(exps) == 1:
        return next(iter(exps.values()))
    return None


def default_arm(cfg: AidConfig) -> Arm:
    return Arm("default", cfg.model, cfg.strategy, cfg.check, 1.0)


def bucket(user: str, experiment: str) -> float:
    """A uniform number in [0, 1) fixed by (user, experiment)."""
    h = hashlib.sha256(f"{experiment}\0{user}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign(user: str, exp: Experiment) -> Arm:
    if user in exp.pins:
        return next(a for a in exp.arms if a.name == exp.pins[user])
    total = sum(a.weight for a in exp.arms)
    x = bucket(user, exp.name) * total
    acc = 0.0
    for arm in exp.arms:
        acc += arm.weight
        if x < acc and arm.weight > 0:
            return arm
    return [a for a in exp.arms if a.weight > 0][-1]


def arm_for(cfg: AidConfig, user: str) -> tuple[str | None, Arm]:
    exp = active_experiment(cfg)
    if exp is None:
        return None, default_arm(cfg)
    return exp.name, assign(user, exp)


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def covers(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval of ``successes``/``n`` (``n`` 0: the whole [0, 1])."""
    if n <= 0:
        return Interval(0.0, 0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def diff_interval(s1: int, n1: int, s2: int, n2: int, z: float = Z95) -> Interval:
    """Newcombe's hybrid score interval (method 10) for p1 - p2."""
    a, b = wilson(s1, n1, z), wilson(s2, n2, z)
    d = a.estimate - b.estimate
    lo = d - math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    hi = d + math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    return Interval(d, max(-1.0, lo), min(1.0, hi))


def two_proportion_test(s1: int, n1: int, s2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of p1 = p2: (z, two-sided p-value)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    pool = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (s1 / n1 - s2 / n2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of ``values`` (None when empty)."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return None
    rank = max(1, math.ceil(q / 100 * len(xs)))
    return xs[min(rank, len(xs)) - 1]
