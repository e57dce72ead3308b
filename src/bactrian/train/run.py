"""``bactrian train sft|rl``: a thin layer over TRL — the trainer is built from
:class:`~bactrian.train.config.TrainConfig` in a few lines and TRL trains; nothing here is a
training loop.

    result = train("sft", load_train_config(model="smollm2", lora=True, max_steps=20),
                   dataset=Path("ds"), output=Path("out/sft"))
    result = train("rl", load_train_config(model="out/sft"), dataset=..., output=...)

Order of work: every check that needs no weights (settings, the dataset and its split, the
model's files, the strategy, the output directory) → the tokenizer, the rows → (RL) the CES
warms every base of the ``rl`` split → the model loads → TRL trains (checkpoints under
``output/checkpoints``, ``--resume`` continues from the last) → the model is saved into
``output`` (full weights, a merged LoRA, or the LoRA adapter beside its base's name) with its
tokenizer and ``bactrian.json``, and registered by name for ``bactrian eval`` and the sidecar.
Metrics go to the console, ``output/metrics.jsonl`` and TensorBoard when it is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian import __version__
from bactrian.ces.rlreward import ExampleJudge, manifest_hash, model_output_config
from bactrian.errors import BactrianError
from bactrian.extras import require
from bactrian.models.base import register_model
from bactrian.strategies import Strategy
from bactrian.train.config import TrainConfig, is_main_process, resolved, validate
from bactrian.train.data import (
    META,
    ModelSource,
    TrainError,
    check_output,
    load_split,
    pick_strategy,
    resolve_source,
    rl_rows,
    sft_rows,
    split_for,
)
from bactrian.train.reward import REWARDS_LOG, CESReward

Echo = Callable[[str], None]
METRICS_LOG = "metrics.jsonl"
CHECKPOINTS = "checkpoints"


@dataclass
class Plan:
    """Everything checked before weights load."""

    mode: str
    cfg: TrainConfig
    source: ModelSource
    dataset: Path
    manifest: dict[str, Any]
    examples: list[Any]
    strategy: Strategy
    output: Path
    resume: bool
    name: str
    budget: int
    warnings: list[str] = field(default_factory=list)


def plan(
    mode: str,
    cfg: TrainConfig,
    *,
    dataset: Path,
    output: Path,
    resume: bool = False,
    overwrite: bool = False,
    name: str | None = None,
) -> Plan:
    """Check a run without loading any weights; raises a :class:`TrainError` or
    :class:`~bactrian.errors.ConfigError` that says what to change."""
    validate(cfg, mode)
    output = Path(output)
    if is_main_process():  # the other ranks of a launch find rank 0's files there
        check_output(output, resume=resume, overwrite=overwrite)
    manifest, examples = load_split(Path(dataset), split_for(mode))
    source = resolve_source(cfg.model)
    strategy = pick_strategy(cfg, source, examples)
    run_name = name or output.resolve().name
    budget = int(source.config.max_prompt_tokens)
    return Plan(
        mode,
        resolved(cfg, mode),
        source,
        Path(dataset).resolve(),
        manifest,
        examples,
        strategy,
        output,
        resume,
        run_name,
        budget,
    )


def train(
    mode: str,
    cfg: TrainConfig,
    *,
    dataset: Path,
    output: Path,
    resume: bool = False,
    overwrite: bool = False,
    name: str | None = None,
    register: bool = True,
    echo: Echo | None = None,
) -> dict[str, Any]:
    """Run SFT (``mode="sft"``, the ``train`` split) or GRPO (``"rl"``, the ``rl`` split);
    returns the ``bactrian.json`` written into ``output``."""
    echo = echo or (lambda s: None)
    p = plan(
        mode, cfg, dataset=dataset, output=output, resume=resume, overwrite=overwrite, name=name
    )
    if overwrite and p.output.exists() and is_main_process():
        shutil.rmtree(p.output)
    p.output.mkdir(parents=True, exist_ok=True)
    echo(
        f"{mode}: {len(p.examples)} {split_for(mode)} examples, model {p.source.name} "
        f"({p.source.path}), strategy {p.strategy.name}, output {p.output}"
    )
    start = time.monotonic()
    reward: CESReward | None = None
    if mode == "rl":
        reward = _reward(p)
        echo(f"warming the CES on {len(p.examples)} bases ...")
        info = reward.warm()
        echo(f"CES warm: {info['bases']} bases in {info['warm_s']:.1f} s")
    tokenizer, model = _load(p)
    count = _counter(tokenizer)
    rows_fn = sft_rows if mode == "sft" else rl_rows
    rows = rows_fn(p.examples, p.strategy, count, p.budget)
    datasets = require("datasets", "data", what="training data")
    data = datasets.Dataset.from_list(rows)
    trainer = _trainer(p, model, tokenizer, data, reward, echo)
    # the metrics callback prints each log line (shorter); transformers' printer would repeat it
    trainer.remove_callback(require("transformers", "models").PrinterCallback)
    checkpoint = _last_checkpoint(p.output / CHECKPOINTS) if p.resume else None
    if p.resume and checkpoint is None:
        raise TrainError(f"--resume: {p.output / CHECKPOINTS} holds no checkpoint to continue.")
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = dict(result.metrics)
    metrics["train_s"] = round(time.monotonic() - start, 2)
    if reward is not None:
        metrics["ces_verdicts"] = reward.judged
        metrics["ces_judge_s"] = round(reward.judge_s, 3)
    saved = _save(p, trainer, tokenizer)
    meta = _meta(p, metrics, saved, trainer)
    if is_main_process():
        (p.output / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if register:
            _register(p, saved, meta)
    echo(f"saved {saved['kind']} model to {p.output} (registered as {p.name!r})")
    return meta


def _reward(p: Plan) -> CESReward:
    cfg = p.cfg
    config = model_output_config(cfg.ces_policy, workers=cfg.ces_workers)
    judge = ExampleJudge(
        p.dataset,
        strategy=p.strategy,
        split="rl",
        backend=cfg.ces_backend or None,
        config=config,
        workers=cfg.ces_workers,
        stages=cfg.stages,
        format_weight=cfg.format_weight,
        bases_dir=p.output / "bases",
    )
    return CESReward(judge, p.output / REWARDS_LOG)


def _counter(tokenizer: Any) -> Callable[[str], int]:
    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False)) if text else 0

    return count


def _load(p: Plan) -> tuple[Any, Any]:
    """The tokenizer and the model (float32 on CPU, bf16 where the GPU has it)."""
    torch = require("torch", "models", what="training")
    transformers = require("transformers", "models", what="training")
    path = str(p.source.path)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        dtype = torch.bfloat16 if p.cfg.bf16 else torch.float32
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except Exception as exc:  # any loader failure is the model's: say so in one line
        raise TrainError(f"The model in {path} does not load: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(tokenizer, "chat_template", None) is None:
        raise TrainError(
            f"The tokenizer in {path} has no chat template: the prompts are chat messages. "
            "Save a tokenizer with a chat_template beside the model."
        )
    if p.source.adapter is not None:
        peft = require("peft", "models", what="LoRA adapters")
        model = peft.PeftModel.from_pretrained(
            model, str(p.source.adapter), is_trainable=p.cfg.lora
        )
        if not p.cfg.lora:  # a full fine-tune of an adapter model: fold the adapter in first
            model = model.merge_and_unload()
    return tokenizer, model


def _report_to(cfg: TrainConfig) -> list[str] | str:
    wanted = [r for r in cfg.report_to if r != "auto"]
    if "auto" in cfg.report_to:
        try:
            require("tensorboard", "train")
            wanted.append("tensorboard")
        except BactrianError:
            pass
    return wanted or "none"


def _common_args(p: Plan) -> dict[str, Any]:
    c = p.cfg
    return {
        "output_dir": str(p.output / CHECKPOINTS),
        "per_device_train_batch_size": c.batch_size,
        "gradient_accumulation_steps": c.grad_accum,
        "learning_rate": c.learning_rate,
        "num_train_epochs": c.epochs,
        "max_steps": c.max_steps,
        "logging_steps": c.logging_steps,
        "save_strategy": "steps",
        "save_steps": c.save_steps or 500,
        "save_total_limit": c.save_total_limit,
        "seed": c.seed,
        "data_seed": c.seed,
        "use_cpu": bool(c.use_cpu),
        "bf16": bool(c.bf16),
        "report_to": _report_to(c),
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def _peft_config(p: Plan) -> Any:
    if not p.cfg.lora or p.source.adapter is not None:
        return None
    peft = require("peft", "models", what="LoRA")
    targets: Any = p.cfg.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    return peft.LoraConfig(
        r=p.cfg.lora_r,
        lora_alpha=p.cfg.lora_alpha,
        lora_dropout=p.cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def _trainer(
    p: Plan, model: Any, tokenizer: Any, data: Any, reward: CESReward | None, echo: Echo
) -> Any:
    trl = require("trl", "train", what="training")
    callback = _log_callback(p.output / METRICS_LOG, echo)
    common = _common_args(p)
    # TRL turns it on by default; on CPU it only costs time (recomputed activations).
    # transformers 5 names it activation_checkpointing (the old name is a deprecated alias)
    fields = getattr(trl.SFTConfig, "__dataclass_fields__", {})
    key = (
        "activation_checkpointing"
        if "activation_checkpointing" in fields
        else "gradient_checkpointing"
    )
    common[key] = bool(p.cfg.gradient_checkpointing)
    if p.mode == "sft":
        args = trl.SFTConfig(
            **common,
            max_length=p.cfg.max_length,
            completion_only_loss=True,  # loss on the diff, never on the prompt
            packing=False,
        )
        return trl.SFTTrainer(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=_peft_config(p),
            callbacks=[callback],
        )
    vllm: dict[str, Any] = {}
    if p.cfg.use_vllm:
        vllm = {"use_vllm": True, "vllm_mode": p.cfg.vllm_mode}
        if p.cfg.vllm_server_base_url:
            vllm["vllm_server_base_url"] = p.cfg.vllm_server_base_url
    args = trl.GRPOConfig(
        **common,
        **vllm,
        num_generations=p.cfg.num_generations,
        max_completion_length=p.cfg.max_completion_length,
        temperature=p.cfg.temperature,
        beta=p.cfg.beta,
        log_completions=False,
    )
    return trl.GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=_peft_config(p),
        callbacks=[callback],
    )


def _log_callback(path: Path, echo: Echo) -> Any:
    transformers = require("transformers", "models", what="training")

    class MetricsLog(transformers.TrainerCallback):  # type: ignore[name-defined]
        """Each log line TRL makes, to the console and ``metrics.jsonl``."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not logs or not state.is_world_process_zero:
                return
            row = {"step": state.global_step, **{k: _num(v) for k, v in logs.items()}}
            with path.open("a") as fh:
                fh.write(json.dumps(row, sort_keys=True) + "\n")
            shown = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in row.items()
                if k in _SHOWN
            )
            echo(f"  {shown}")

    return MetricsLog()


_SHOWN = (
    "step",
    "loss",
    "grad_norm",
    "learning_rate",
    "reward",
    "ces/reward_mean",
    "ces/build_pass",
    "ces/test_pass",
    "ces/infra_error_share",
    "ces/latency_s",
    "train_runtime",
)


def _num(v: Any) -> Any:
    try:
        return float(v) if not isinstance(v, (str, bool)) else v
    except (TypeError, ValueError):
        return str(v)


def _last_checkpoint(root: Path) -> Path | None:
    if not root.is_dir():
        return None
    found = [d for d in root.glob("checkpoint-*") if d.is_dir() and d.name.split("-")[-1].isdigit()]
    return max(found, key=lambda d: int(d.name.split("-")[-1])) if found else None


def _save(p: Plan, trainer: Any, tokenizer: Any) -> dict[str, Any]:
    """Save the model into ``output``: a merged LoRA or full weights as a plain checkpoint,
    else the adapter (loaded with its base by the local backend)."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    is_peft = hasattr(model, "peft_config")
    if is_peft and p.cfg.merge_lora:  # one process (validate refuses it under a launch)
        model.merge_and_unload().save_pretrained(str(p.output))
        is_peft = False
    else:  # gathers ZeRO-3 / FSDP shards; writes on the main process only
        trainer.save_model(str(p.output))
    if is_main_process():
        tokenizer.save_pretrained(str(p.output))
    return {"kind": "lora-adapter" if is_peft else "full", "adapter": is_peft}


def _git_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _meta(p: Plan, metrics: dict[str, Any], saved: dict[str, Any], trainer: Any) -> dict[str, Any]:
    history = list(getattr(trainer.state, "log_history", []))
    return {
        "name": p.name,
        "mode": p.mode,
        "base_model": p.source.name,
        "base_path": str(p.source.path),
        "kind": saved["kind"],
        "dataset": str(p.dataset),
        "manifest_hash": manifest_hash(p.dataset),
        "split": split_for(p.mode),
        "examples": len(p.examples),
        "strategy": p.strategy.name,
        "model_config": {
            "strategy": p.strategy.name,
            "max_prompt_tokens": p.budget,
            "max_tokens": int(p.source.config.max_tokens),
        },
        "config": p.cfg.to_dict(),
        "bactrian_version": __version__,
        "git_revision": _git_revision(),
        "metrics": {k: _num(v) for k, v in metrics.items()},
        "steps": int(getattr(trainer.state, "global_step", 0)),
        "log_history": history,
        "created_at": time.time(),
    }


def _register(p: Plan, saved: dict[str, Any], meta: dict[str, Any]) -> None:
    out = str(p.output.resolve())
    entry = {
        "strategy": p.strategy.name,
        "max_prompt_tokens": p.budget,
        "max_tokens": int(p.source.config.max_tokens),
    }
    if saved["adapter"]:
        register_model(p.name, path=str(p.source.path), adapter=out, **entry)
    else:
        register_model(p.name, path=out, **entry)
