"""verl's custom reward function over the CES: the same reward as the TRL adapter.

verl config (``bactrian dataset export DS --format verl`` writes the parquet)::

    data.train_files=DS/export/verl/rl.parquet
    reward.custom_reward_function.path=$(python -c 'import bactrian.train.verl as m; print(m.__file__)')
    reward.custom_reward_function.name=compute_score

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` once per
response; ``extra_info`` (written by the export) names the dataset and the example, whose
base is materialised and warmed on first use and kept for the life of the process. It
returns a dict: ``score`` (the reward verl trains on) and extra metrics verl logs. verl
needs a number for every response: a CES infrastructure error pays 0.0 with
``infra_error`` 1.0. Stage command overrides and CES settings come from ``[train]``
(``stages``, ``ces_backend``, ``ces_workers``, ``format_weight``) and ``[ces]``.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from bactrian.ces.rlreward import ExampleJudge, model_output_config
from bactrian.errors import ConfigError
from bactrian.train.config import load_train_config

_JUDGES: dict[tuple[str, str], ExampleJudge] = {}
_LOCK = threading.Lock()


def judge_for(dataset: str, strategy: str = "unified-diff") -> ExampleJudge:
    """The process-wide judge of ``dataset`` (created on first use)."""
    key = (str(Path(dataset).resolve()), strategy)
    with _LOCK:
        judge = _JUDGES.get(key)
        if judge is None:
            cfg = load_train_config()
            judge = ExampleJudge(
                Path(key[0]),
                strategy=strategy,
                split=None,
                backend=cfg.ces_backend or None,
                config=model_output_config(cfg.ces_policy, workers=cfg.ces_workers),
                workers=cfg.ces_workers,
                stages=cfg.stages,
                format_weight=cfg.format_weight,
            )
            _JUDGES[key] = judge
        return judge


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """verl's ``compute_score``: the CES reward of ``solution_str`` for the example that
    ``extra_info`` names."""
    info = extra_info or {}
    if not info.get("example_id") or not info.get("dataset"):
        raise ConfigError(
            "extra_info must carry example_id and dataset: train on the parquet that "
            "`bactrian dataset export --format verl` writes."
        )
    judge = judge_for(str(info["dataset"]), str(info.get("strategy") or "unified-diff"))
    [j] = judge.judge([(str(info["example_id"]), solution_str)])
    v = j.verdict
    return {
        "score": j.reward if j.reward is not None else 0.0,
        "ces_reward": j.ces_reward if j.ces_reward is not None else 0.0,
        "format_reward": j.format_reward,
        "ok": 1.0 if v is not None and v.ok else 0.0,
        "infra_error": 1.0 if j.infra_error else 0.0,
        "matches_gold": 1.0 if j.diff.strip() == str(ground_truth).strip() else 0.0,
    }


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`compute_score` for verl's async reward loop (runs in a thread)."""
    return await asyncio.to_thread(
        compute_score, data_source, solution_str, ground_truth, extra_info, **kwargs
    )
