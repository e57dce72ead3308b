"""The GRPO reward: a TRL reward function over the CES (:class:`bactrian.ces.rlreward.ExampleJudge`).

TRL calls it once per generation batch with aligned lists (``prompts``, ``completions``,
``completion_ids`` and every dataset column — here ``example_id``) plus ``trainer_state``,
``log_metric`` and ``log_extra``; it returns one float per completion, ``None`` for a CES
infrastructure error (TRL leaves the sample out rather than charge the diff). Each call:

- judges every completion of the batch in one CES call (a group's completions in parallel
  across the workers) against its example's base, warmed before step 1;
- logs per-stage pass rates, the mean reward, the share of infrastructure errors, the reward
  latency and verdicts per second through ``log_metric`` (TRL averages and prints them with
  its own metrics), and the furthest stage per completion through ``log_extra``;
- appends one JSON line per completion to ``rewards.jsonl`` (step, example, completion, diff,
  verdict, reward parts), so every logged reward can be checked against its verdict.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bactrian.ces.rlreward import ExampleJudge, Judged, completion_text, stage_pass_rates

REWARDS_LOG = "rewards.jsonl"


class CESReward:
    """``reward(prompts, completions, completion_ids, example_id, **kw) -> list[float|None]``."""

    __name__ = "ces_reward"  # TRL names the reward's metrics after it

    def __init__(self, judge: ExampleJudge, log_path: Path | None = None) -> None:
        self.judge = judge
        self.log_path = Path(log_path) if log_path else None
        self.calls = 0
        self.judged = 0
        self.judge_s = 0.0
        self._lock = threading.Lock()

    def warm(self) -> dict[str, Any]:
        """Warm every example's base (call before step 1)."""
        return self.judge.warm()

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        example_id: Sequence[str] | None = None,
        trainer_state: Any = None,
        log_metric: Callable[[str, float], None] | None = None,
        log_extra: Callable[[str, list[Any]], None] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        if example_id is None or len(example_id) != len(completions):
            raise ValueError(
                "The CES reward needs the dataset's example_id column aligned with the "
                "completions (train on rows from bactrian.train.data.rl_rows)."
            )
        start = time.monotonic()
        judged = self.judge.judge(list(zip(example_id, completions, strict=True)))
        elapsed = time.monotonic() - start
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        with self._lock:
            self.calls += 1
            self.judged += len(judged)
            self.judge_s += elapsed
        self._log(judged, completions, step, elapsed, log_metric, log_extra)
        return [j.reward for j in judged]

    def _log(
        self,
        judged: list[Judged],
        completions: Sequence[Any],
        step: int,
        elapsed: float,
        log_metric: Callable[[str, float], None] | None,
        log_extra: Callable[[str, list[Any]], None] | None,
    ) -> None:
        if log_metric is not None:
            for stage, rate in stage_pass_rates(judged).items():
                log_metric(f"ces/{stage}_pass", rate)
            paid = [j.reward for j in judged if j.reward is not None]
            log_metric("ces/reward_mean", sum(paid) / len(paid) if paid else 0.0)
            log_metric("ces/infra_error_share", sum(j.infra_error for j in judged) / len(judged))
            log_metric("ces/well_formed_share", sum(j.well_formed for j in judged) / len(judged))
            log_metric("ces/latency_s", elapsed)
            log_metric("ces/verdicts_per_s", len(judged) / elapsed if elapsed > 0 else 0.0)
        if log_extra is not None:
            log_extra(
                "ces_furthest", [str(j.verdict.furthest if j.verdict else None) for j in judged]
            )
        if self.log_path is None:
            return
        with self._lock, self.log_path.open("a") as fh:
            for j, c in zip(judged, completions, strict=True):
                row = {"step": step, "call": self.calls, "completion": completion_text(c)}
                row.update(j.to_dict())
                fh.write(json.dumps(row, sort_keys=True) + "\n")


def read_reward_log(path: Path) -> list[dict[str, Any]]:
    """The rows :class:`CESReward` wrote (a half-written last line is skipped)."""
    rows: list[dict[str, Any]] = []
    if not Path(path).exists():
        return rows
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
