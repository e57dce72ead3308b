"""The CES reward called exactly as TRL's GRPOTrainer calls a reward function (keyword
arguments: prompts, completions, completion_ids, every dataset column, trainer_state,
log_metric, log_extra), against the real CES on a real OCaml base."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from bactrian.ces.api import shutdown
from bactrian.ces.rlreward import ExampleJudge, model_output_config
from bactrian.dataset.splits import load_dataset
from bactrian.errors import CESError
from bactrian.train.reward import CESReward, read_reward_log
from tests.evaluate.conftest import STAGES

BROKEN = "let sub a b = a -. b\n"  # a type error: parses, does not type-check


def _completions(money_dataset: Path) -> tuple[str, list[list[dict[str, str]]]]:
    _, exs = load_dataset(money_dataset)
    rl = next(e for e in exs if e.split == "rl")
    gold = f"Here is the change:\n```diff\n{rl.diff}```\n"
    broken = gold.replace("let sub a b = a - b\n", BROKEN)
    assert broken != gold
    texts = [gold, broken, "I cannot help with that.", gold]
    return rl.id, [[{"role": "assistant", "content": t}] for t in texts]


def test_the_reward_as_trl_calls_it(money_dataset: Path, tmp_path: Path) -> None:
    example_id, completions = _completions(money_dataset)
    judge = ExampleJudge(
        money_dataset,
        stages=STAGES,
        workers=2,
        config=model_output_config("both", workers=2),
        bases_dir=tmp_path / "bases",
    )
    reward = CESReward(judge, tmp_path / "rewards.jsonl")
    metrics: dict[str, list[float]] = defaultdict(list)
    extra: dict[str, list[object]] = defaultdict(list)
    try:
        reward.warm()
        out = reward(
            prompts=[[{"role": "user", "content": "add Money.sub"}]] * 4,
            completions=completions,
            completion_ids=[[1, 2, 3]] * 4,
            example_id=[example_id] * 4,
            trainer_state=SimpleNamespace(global_step=3),
            log_metric=lambda k, v: metrics[k].append(v),
            log_extra=lambda k, v: extra[k].extend(v),
        )
        with pytest.raises(CESError, match="Unknown example"):
            reward(completions=completions[:1], example_id=["fix-000000000000"])
    finally:
        shutdown()
    assert out[0] == pytest.approx(1.1) and out[3] == pytest.approx(1.1)  # passes + format
    assert out[1] is not None and 0.1 < out[1] < 1.0  # applies, parses, fails to type-check
    assert out[2] == 0.0  # no edit: apply fails, no format reward
    assert metrics["ces/test_pass"] == [0.5] and metrics["ces/apply_pass"] == [0.75]
    assert metrics["ces/infra_error_share"] == [0.0]
    assert extra["ces_furthest"] == ["test", "parse", "None", "test"]
    rows = read_reward_log(tmp_path / "rewards.jsonl")
    assert [r["reward"] for r in rows] == out and {r["step"] for r in rows} == {3}
