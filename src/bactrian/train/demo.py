"""The demo's training step (``DEMO_TRAIN=1 make demo``): a short LoRA fine-tune of SmolLM2
on a dataset's ``train`` split, and ``eval compare`` of the model before and after on its
``heldout`` split — honest numbers, whatever they are.

    result = run_demo_training(dataset_dir, out_dir, progress=print)
    result.lines                      # what was printed: train metrics, both evals, the comparison

A few examples and a few steps prove that the pipe works (mined data → TRL → a model that
loads by name → the CES judges it), not that the model got better: the caveat is printed
with the numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.evaluate.run import run_eval, summary_lines, write_summary
from bactrian.extras import require
from bactrian.train.config import load_train_config
from bactrian.train.run import train

CAVEAT = (
    "caveat: {n} training examples and {steps} steps prove the pipe (mined data -> TRL -> a "
    "model that loads by name -> CES verdicts), not the model; expect no real gain from so "
    "little training."
)
DEMO_MODEL = "smollm2-demo"


@dataclass
class DemoTrainResult:
    """What the demo's training step measured."""

    model: str
    output: str
    train: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]
    comparison: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        """One line for the demo's closing summary."""
        b, a = self.before.get("pass@1", 0.0), self.after.get("pass@1", 0.0)
        return (
            f"{self.model} pass@1 {100 * a:.1f}% after vs {100 * b:.1f}% before on "
            f"{self.after.get('examples', 0)} heldout examples (model in {self.output}; "
            "a few steps prove the pipe, not the model)"
        )


def run_demo_training(
    dataset_dir: Path,
    out_dir: Path,
    progress: Callable[[str], None] = print,
    *,
    base_model: str = "smollm2",
    max_steps: int = 4,
    max_tokens: int = 64,
    limit: int | None = None,
) -> DemoTrainResult:
    """LoRA SFT of ``base_model`` on ``dataset_dir``'s ``train`` split for ``max_steps``
    steps into ``out_dir/sft`` (registered as ``smollm2-demo``), then ``eval run`` of the
    base and of the trained model on ``heldout`` (greedy, ``max_tokens`` each, at most
    ``limit`` examples) and their paired comparison. Every line shown goes to ``progress``."""
    out = Path(out_dir)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        progress(line)

    require(
        "datasets", "data", what="training data"
    ).disable_progress_bars()  # the demo's lines only
    timings: dict[str, float] = {}
    t = time.monotonic()
    say(f"training: LoRA SFT of {base_model} for {max_steps} steps on the train split")
    cfg = load_train_config(
        model=base_model, lora=True, max_steps=max_steps, learning_rate=2e-4, seed=0
    )
    meta = train(
        "sft",
        cfg,
        dataset=Path(dataset_dir),
        output=out / "sft",
        overwrite=True,
        name=DEMO_MODEL,
        echo=say,
    )
    timings["train_s"] = time.monotonic() - t
    say(
        f"trained: {meta['steps']} steps on {meta['examples']} examples, final loss "
        f"{meta['metrics'].get('train_loss', float('nan')):.3f}, {timings['train_s']:.0f} s"
    )
    runs = {}
    for label, model in (("before", base_model), ("after", DEMO_MODEL)):
        t = time.monotonic()
        say(f"eval {label}: {model} on heldout")
        runs[label] = run_eval(
            Path(dataset_dir),
            out / f"eval-{label}",
            model=model,
            max_tokens=max_tokens,
            limit=limit,
            progress=False,
            echo=say,
        )
        timings[f"eval_{label}_s"] = time.monotonic() - t
    compared = write_summary(out / "eval-after", compare_with=out / "eval-before")
    for line in summary_lines(compared):
        say(f"  {line}")
    say(CAVEAT.format(n=meta["examples"], steps=meta["steps"]))
    return DemoTrainResult(
        DEMO_MODEL,
        str(out / "sft"),
        meta,
        runs["before"],
        runs["after"],
        dict(compared.get("comparison", {})),
        lines,
        timings,
    )
