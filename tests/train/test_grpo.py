"""GRPO with TRL on the tiny model: 2 steps, every completion judged by the real CES on a real
OCaml base (ocamlc type-checks and runs the test); the rewards TRL logged are the rewards of
the CES verdicts for the same completions, judged again here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bactrian.ces.api import evaluate, shutdown
from bactrian.ces.contract import BaseSpec
from bactrian.ces.rlreward import model_output_config
from bactrian.dataset.splits import load_dataset
from bactrian.strategies import get_strategy
from bactrian.train.config import load_train_config
from bactrian.train.reward import REWARDS_LOG, read_reward_log
from bactrian.train.run import METRICS_LOG, train
from tests.evaluate.conftest import STAGES
from tests.train.conftest import train_config_file


def test_grpo_two_steps_rewards_are_the_ces_verdicts_rewards(
    tiny_model: Path, money_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rl"
    cfg = load_train_config(
        train_config_file(tmp_path),
        model=str(tiny_model),
        max_steps=2,
        batch_size=4,
        num_generations=4,
        max_completion_length=48,
        ces_workers=2,
    )
    try:
        meta = train("rl", cfg, dataset=money_dataset, output=out, name="tiny-rl")
        rows = read_reward_log(out / REWARDS_LOG)
        assert len(rows) == 8  # 2 steps x 1 prompt x 4 generations
        assert meta["metrics"]["ces_verdicts"] == 8 and meta["split"] == "rl"
        # judge the same completions again, straight through the CES
        ex = {e.id: e for e in load_dataset(money_dataset)[1]}
        strategy = get_strategy()
        base = BaseSpec(source=str(out / "bases" / rows[0]["example_id"]), stages=dict(STAGES))
        diffs = []
        for r in rows:
            parsed = strategy.parse(r["completion"], ex[r["example_id"]].files)
            diffs.append(parsed.diff if parsed.well_formed else r["completion"])
            assert r["diff"] == diffs[-1]
        again = evaluate(base, diffs, allow_lenient=True, config=model_output_config("both"))
    finally:
        shutdown()
    assert [r["ces_reward"] for r in rows] == [v.reward for v in again]
    assert [r["verdict"]["furthest"] for r in rows] == [v.furthest for v in again]
    for r in rows:
        assert r["reward"] == pytest.approx(r["ces_reward"] + (0.1 if r["well_formed"] else 0.0))
    # what TRL logged per step is the mean of those rewards
    logged = [json.loads(x) for x in (out / METRICS_LOG).read_text().splitlines()]
    steps = [r for r in logged if "rewards/ces_reward/mean" in r]
    assert len(steps) == 2
    for i, step in enumerate(steps):
        mine = [r["reward"] for r in rows[4 * i : 4 * i + 4]]
        assert step["rewards/ces_reward/mean"] == pytest.approx(sum(mine) / 4, abs=1e-5)
        assert step["ces/infra_error_share"] == 0.0
        assert 0.0 <= step["ces/test_pass"] <= step["ces/apply_pass"] <= 1.0
        assert step["ces/latency_s"] > 0
