"""Judging model completions for dataset examples: the one reward that TRL's GRPO (through
:mod:`bactrian.train.reward`), verl (:mod:`bactrian.train.verl`) and OpenRLHF's remote reward
endpoint (:mod:`bactrian.ces.openrlhf`, served by ``bactrian ces serve``) all pay.

    judge = ExampleJudge(dataset_dir, strategy="unified-diff", workers=2)
    judge.warm()                                       # every base of the rl split, once
    [j] = judge.judge([("change-0123abcd4567", completion_text)])
    j.reward, j.ces_reward, j.format_reward, j.verdict

For each completion: the strategy parses it back into a diff; the CES judges that diff
against its example's base (the whole batch in one ``evaluate`` call, so a group's completions
run in parallel across the workers); the verdict's reward (shaped by ``[ces] reward_mode`` and
``reward_weights``) plus ``format_weight`` when the output held a readable edit is the reward.
A CES infrastructure ``error`` verdict is no verdict on the diff: its reward is ``None``
(TRL leaves such samples out). Model output is judged under ``edits_tests_policy`` ``both``
by default and never ``trust``.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bactrian.ces.api import get_backend
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import STAGES, BaseSpec, CESBackend, Job, Verdict
from bactrian.dataset.example import Example
from bactrian.dataset.splits import load_dataset, materialize_base
from bactrian.errors import CESError, ConfigError
from bactrian.strategies import Strategy, get_strategy

DEFAULT_FORMAT_WEIGHT = 0.1


def manifest_hash(dataset: Path) -> str:
    """A short hash of a dataset's ``manifest.json`` (what a trained model records)."""
    path = Path(dataset) / "manifest.json"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ""


@dataclass
class Judged:
    """One completion judged: its diff, whether the output was a readable edit, the verdict
    (``None`` only when nothing was judged) and the reward split into its parts."""

    example_id: str
    diff: str
    well_formed: bool
    verdict: Verdict | None
    ces_reward: float | None
    format_reward: float
    reward: float | None

    @property
    def infra_error(self) -> bool:
        return self.verdict is not None and self.verdict.error is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "example_id": self.example_id,
            "diff": self.diff,
            "well_formed": self.well_formed,
            "ces_reward": self.ces_reward,
            "format_reward": self.format_reward,
            "reward": self.reward,
            "infra_error": self.infra_error,
            "verdict": self.verdict.to_dict() if self.verdict else None,
        }


def model_output_config(policy: str = "both", **overrides: Any) -> CESConfig:
    """The CES config for judging model output: ``policy`` for its test edits, never
    ``trust`` (model output never edits the tests that judge it)."""
    if policy == "trust":
        raise ConfigError(
            "edits_tests_policy 'trust' is refused for model output: a model could rewrite "
            "the tests that judge it. Use 'both' (the default), 'pristine' or 'fail'."
        )
    return CESConfig.load(edits_tests_policy=policy, **overrides)


def stage_pass_rates(judged: Sequence[Judged]) -> dict[str, float]:
    """Per stage, the share of the judged completions (infrastructure errors left out) whose
    verdict passed that stage."""
    verdicts = [j.verdict for j in judged if j.verdict is not None and not j.infra_error]
    if not verdicts:
        return {s: 0.0 for s in STAGES}
    out = {}
    for stage in STAGES:
        passed = 0
        for v in verdicts:
            st = v.stage(stage)
            passed += bool(st and st.status == "passed")
        out[stage] = passed / len(verdicts)
    return out


class ExampleJudge:
    """The examples of a dataset, their base trees (materialised once under ``bases_dir``)
    and a CES backend to judge completions against them."""

    def __init__(
        self,
        dataset: Path,
        *,
        strategy: str | Strategy = "unified-diff",
        split: str | None = "rl",
        backend: str | CESBackend | None = None,
        config: CESConfig | None = None,
        workers: int | None = None,
        stages: dict[str, str] | None = None,
        format_weight: float = DEFAULT_FORMAT_WEIGHT,
        bases_dir: Path | None = None,
        policy: str = "both",
    ) -> None:
        self.dataset = Path(dataset)
        _, examples = load_dataset(self.dataset)
        self.examples: dict[str, Example] = {
            e.id: e for e in examples if split is None or e.split == split
        }
        if not self.examples:
            raise ConfigError(
                f"Dataset {self.dataset} has no {split!r} examples to judge completions for "
                f"(splits: {sorted({str(e.split) for e in examples})})."
            )
        self.strategy = strategy if isinstance(strategy, Strategy) else get_strategy(strategy)
        model_output_config(policy)  # refuses "trust"
        self.policy = policy
        self.config = config or model_output_config(policy)
        self.backend_name = backend if isinstance(backend, str) else None
        self.workers = workers
        self.stages = dict(stages or {})
        self.format_weight = float(format_weight)
        root = self.config.resolved_work_dir() / "rl-bases" / manifest_hash(self.dataset)
        self.bases_dir = Path(bases_dir) if bases_dir else root
        self._bases: dict[str, BaseSpec] = {}
        self._lock = threading.Lock()
        # a backend instance (the service's own) is used as is; a name is shared per process
        self._backend: CESBackend | None = None if isinstance(backend, str | None) else backend

    @property
    def backend(self) -> CESBackend:
        if self._backend is None:
            self._backend = get_backend(self.backend_name, self.config)
        return self._backend

    def example(self, example_id: str) -> Example:
        ex = self.examples.get(str(example_id))
        if ex is None:
            raise CESError(
                f"Unknown example {example_id!r}: it is not in the {self.dataset} examples this "
                "reward judges. Export the dataset again (`bactrian dataset export`) and train "
                "on that export."
            )
        return ex

    def base(self, example_id: str) -> BaseSpec:
        """The example's base tree (materialised on first use; a fix's red base is judged as
        far as it builds, like evaluation does)."""
        ex = self.example(example_id)
        with self._lock:
            spec = self._bases.get(ex.id)
            if spec is None:
                dest = self.bases_dir / ex.id
                marker = self.bases_dir / f"{ex.id}.ok"  # beside the tree, never inside it
                if not marker.exists():
                    shutil.rmtree(dest, ignore_errors=True)
                    materialize_base(ex, dest)
                    marker.write_text("")
                spec = BaseSpec(
                    source=str(dest), stages=dict(self.stages), require_green=ex.kind != "fix"
                )
                self._bases[ex.id] = spec
            return spec

    def warm(self, ids: Sequence[str] | None = None) -> dict[str, Any]:
        """Warm the base of every example (or of ``ids``) before the first step; returns
        ``{"bases", "warm_s"}``."""
        start = time.monotonic()
        chosen = list(ids) if ids is not None else sorted(self.examples)
        for example_id in chosen:
            self.backend.warm(self.base(example_id), self.workers)
        return {"bases": len(chosen), "warm_s": time.monotonic() - start}

    def judge(self, pairs: Sequence[tuple[str, Any]]) -> list[Judged]:
        """Judge ``(example_id, completion)`` pairs: one CES ``evaluate`` call for all of them
        (spread over the workers), results in order."""
        parsed = []
        jobs = []
        for example_id, completion in pairs:
            ex = self.example(example_id)
            text = completion_text(completion)
            out = self.strategy.parse(text, ex.files)
            # text with no readable edit goes to the CES as it is: `apply` says why
            diff = out.diff if out.well_formed else text
            parsed.append((ex.id, out.well_formed, diff))
            jobs.append(
                Job(
                    base=self.base(ex.id),
                    diff=diff,
                    allow_lenient=True,
                    edits_tests_policy=self.policy,
                )
            )
        verdicts = self.backend.evaluate(jobs) if jobs else []
        result = []
        for (example_id, well_formed, diff), v in zip(parsed, verdicts, strict=True):
            fmt = self.format_weight if well_formed else 0.0
            total = None if v.reward is None else float(v.reward) + fmt
            result.append(Judged(example_id, diff, well_formed, v, v.reward, fmt, total))
        return result

    async def judge_async(self, pairs: Sequence[tuple[str, Any]]) -> list[Judged]:
        """:meth:`judge` without blocking the event loop."""
        return await asyncio.to_thread(self.judge, list(pairs))


def completion_text(completion: Any) -> str:
    """A TRL completion (text, or chat messages) → its text (the assistant's turns)."""
    if isinstance(completion, list):
        return "".join(
            str(m.get("content", ""))
            for m in completion
            if isinstance(m, dict) and m.get("role", "assistant") == "assistant"
        )
    return str(completion)
