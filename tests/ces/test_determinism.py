"""The same job, run many times in any order among other jobs, gives the same verdict."""

from __future__ import annotations

import random

import pytest

from bactrian.ces.contract import BaseSpec, Job

from .conftest import Pool
from .project import append, edit

JOBS = {
    "green": edit("lib/geom.ml", "let double x = 2 * x", "let double x = x + x"),
    "parse": edit("lib/geom.ml", "x * x", "x * (x"),
    "type": edit("lib/geom.ml", "x * x", 'x + "a"'),
    "test": edit("lib/shapes.ml", "| Rect (w, h) -> w * h", "| Rect (w, h) -> w + h"),
    "new-module": append("lib/geom.ml", "let half x = x / 2\n"),
}


def _run(pool: Pool, repeats: int, seed: int) -> None:
    order = [name for name in JOBS for _ in range(repeats if name == "test" else 2)]
    random.Random(seed).shuffle(order)
    base = BaseSpec(str(pool.project))
    verdicts = pool.backend.evaluate([Job(base, JOBS[name]) for name in order])
    seen: dict[str, dict[str, object]] = {}
    for name, v in zip(order, verdicts, strict=True):
        fp = v.fingerprint()
        assert seen.setdefault(name, fp) == fp, f"{name} gave two verdicts"
    assert seen["green"]["ok"] is True
    assert seen["test"]["furthest"] == "build"
    assert len({v.worker for v in verdicts}) == 2  # both workers took part


def test_same_job_same_verdict_among_others(pool: Pool) -> None:
    _run(pool, repeats=4, seed=1)


@pytest.mark.slow
def test_same_job_20_times_same_verdict(pool: Pool) -> None:
    _run(pool, repeats=20, seed=2)
