"""``bactrian train sft|rl`` — thin adapters over :func:`bactrian.train.run.train`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


@click.group("train")
def group() -> None:
    """Fine-tune a model: SFT on the `train` split, then RL (GRPO) with the CES as reward."""


def _options(fn: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--model", help="A model name (`bactrian models list`) or a model directory."),
        click.option(
            "--dataset",
            required=True,
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="A dataset built by `bactrian dataset build`.",
        ),
        click.option(
            "--output",
            required=True,
            type=click.Path(path_type=Path),
            help="New or empty directory for the trained model.",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            help="A TOML file of training settings ([train] table or flat keys).",
        ),
        click.option("--strategy", help="Prompt strategy (default: the model's)."),
        click.option(
            "--lora/--full", default=None, help="LoRA adapters (PEFT) or a full fine-tune."
        ),
        click.option(
            "--merge-lora", is_flag=True, default=None, help="Merge the LoRA into the weights."
        ),
        click.option("--max-steps", type=int, help="Stop after N optimizer steps."),
        click.option("--epochs", type=float, help="Epochs over the split."),
        click.option("--learning-rate", "--lr", "learning_rate", type=float),
        click.option("--batch-size", type=int, help="Per-device batch size."),
        click.option("--grad-accum", type=int, help="Gradient accumulation steps."),
        click.option("--max-length", type=int, help="Max tokens of prompt + completion."),
        click.option("--seed", type=int),
        click.option("--save-steps", type=int, help="Checkpoint every N steps."),
        click.option("--resume", is_flag=True, help="Continue the run in --output."),
        click.option("--overwrite", is_flag=True, help="Replace what --output holds."),
        click.option("--name", help="Register the model under this name (default: output's)."),
        click.option("--json", "as_json", is_flag=True, help="Print bactrian.json."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _run(mode: str, as_json: bool, **kw: Any) -> None:
    from bactrian.train.config import load_train_config
    from bactrian.train.run import train

    run_keys = ("dataset", "output", "resume", "overwrite", "name")
    run = {k: kw.pop(k) for k in run_keys}
    cfg = load_train_config(kw.pop("config_file"), **kw)
    meta = train(mode, cfg, echo=lambda s: click.echo(s, err=as_json), **run)
    if as_json:
        click.echo(json.dumps(meta, indent=2, sort_keys=True))
        return
    m = meta["metrics"]
    click.echo(
        f"{mode} done: {meta['steps']} steps in {m.get('train_s', 0):.1f} s; "
        f"{meta['kind']} model in {run['output']}; `bactrian eval run DATASET OUT "
        f"--model {meta['name']}` evaluates it."
    )


@group.command("sft")
@_options
def sft_cmd(as_json: bool, **kw: Any) -> None:
    """Supervised fine-tuning with TRL's SFTTrainer on the dataset's `train` split (loss on
    the completion only)."""
    _run("sft", as_json, **kw)


@group.command("rl")
@_options
@click.option("--num-generations", type=int, help="Completions per prompt (the GRPO group).")
@click.option("--max-completion-length", type=int, help="Tokens per completion.")
@click.option("--temperature", type=float, help="Sampling temperature.")
@click.option("--ces-workers", type=int, help="Warm CES trees per base.")
@click.option("--ces-backend", type=click.Choice(["local", "ray", "http"]), help="Where to judge.")
@click.option("--use-vllm", is_flag=True, default=None, help="Generate with vLLM (installed).")
def rl_cmd(as_json: bool, **kw: Any) -> None:
    """GRPO with TRL's GRPOTrainer on the `rl` split, rewarded by CES verdicts."""
    _run("rl", as_json, **kw)
