"""Training settings: one dataclass, section ``[train]`` of the config file, ``BACTRIAN_TRAIN_*``
environment variables, a ``--config FILE`` (TOML, a ``[train]`` table or flat keys) and CLI
overrides, in that order. Every check that needs no weights runs in :func:`validate`, before
anything loads.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bactrian.config import load_section
from bactrian.errors import ConfigError

MODES = ("sft", "rl")
SPLIT_OF = {"sft": "train", "rl": "rl"}


@dataclass
class TrainConfig:
    """Section ``[train]``. ``None`` means "the mode's default" (see :func:`resolved`)."""

    model: str = "smollm2"  # a model name (`bactrian models list`) or a model directory
    strategy: str = ""  # "" = the model's strategy (unified-diff for smollm2)
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    merge_lora: bool = False  # merge the adapter into the weights when saving
    learning_rate: float | None = None  # sft 2e-5 (LoRA 2e-4), rl 1e-6 (LoRA 1e-5)
    batch_size: int = 1  # per device
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int = -1  # > 0: stop after this many optimizer steps
    max_length: int = 2048  # tokens of prompt + completion (SFT); the prompt budget (RL)
    seed: int = 0
    logging_steps: int = 1
    save_steps: int = 0  # 0: a checkpoint only at the end
    save_total_limit: int = 2
    gradient_checkpointing: bool | None = None  # None: on with a GPU, off on CPU
    use_cpu: bool | None = None  # None: on CPU when no GPU is visible
    bf16: bool | None = None  # None: where the GPU supports it
    report_to: list[str] = field(default_factory=lambda: ["auto"])  # "auto": tensorboard if any
    # RL (GRPO)
    num_generations: int = 4  # completions per prompt (the group)
    max_completion_length: int = 256
    temperature: float = 1.0
    beta: float = 0.0  # KL coefficient (0: no reference model, TRL's default)
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # "colocate" | "server"
    vllm_server_base_url: str = ""
    format_weight: float = 0.1  # added to the CES reward when the output holds a readable edit
    ces_backend: str = ""  # "" = http when [ces] url is set, else local; or "ray"
    ces_workers: int = 2  # warm trees per base
    ces_policy: str = "both"  # how model output's test edits are judged (never "trust")
    stages: dict[str, str] = field(default_factory=dict)  # CES stage command overrides

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_train_config(config_file: Path | None = None, **overrides: Any) -> TrainConfig:
    """``[train]`` of the config file ← ``BACTRIAN_TRAIN_*`` ← ``config_file`` ← overrides."""
    base = load_section(TrainConfig, "train")
    if config_file is not None:
        data = _read_toml(Path(config_file))
        table = data.get("train", data)
        merged = {**base.to_dict(), **table}
        base = load_section(TrainConfig, "train", file_data={"train": merged}, env={})
    values = {k: v for k, v in overrides.items() if v is not None}
    if values:
        base = load_section(
            TrainConfig, "train", file_data={"train": base.to_dict()}, env={}, overrides=values
        )
    return base


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Training config {path} does not exist; pass a TOML file to --config.")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Training config {path} is not valid TOML: {exc}.") from None


def has_gpu() -> bool:
    """Whether torch sees a CUDA device (False without torch)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolved(cfg: TrainConfig, mode: str) -> TrainConfig:
    """``cfg`` with the mode's defaults filled in (learning rate, CPU or GPU, bf16)."""
    out = TrainConfig(**cfg.to_dict())
    if out.learning_rate is None:
        out.learning_rate = {
            ("sft", False): 2e-5,
            ("sft", True): 2e-4,
            ("rl", False): 1e-6,
            ("rl", True): 1e-5,
        }[(mode, out.lora)]
    gpu = has_gpu()
    if out.use_cpu is None:
        out.use_cpu = not gpu
    if out.bf16 is None:
        out.bf16 = bool(gpu and not out.use_cpu and _bf16_supported())
    if out.gradient_checkpointing is None:
        out.gradient_checkpointing = not out.use_cpu
    if out.use_cpu and out.bf16:
        raise ConfigError("bf16 = true needs a GPU; on CPU train with bf16 = false.")
    return out


def _bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_bf16_supported())


def world_size() -> int:
    """Processes of this run (``accelerate launch`` sets ``WORLD_SIZE``)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """Whether this is rank 0 of an ``accelerate launch`` (or a plain run): only it checks
    and writes the output directory, the model card and the registration."""
    return os.environ.get("RANK", "0") in ("", "0")


def validate(cfg: TrainConfig, mode: str) -> None:
    """Every setting checked before any weights load; a bad one is a :class:`ConfigError`
    that says what to change."""
    if mode not in MODES:
        raise ConfigError(f"Unknown training mode {mode!r}: use one of {', '.join(MODES)}.")
    positive = {
        "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum,
        "max_length": cfg.max_length,
        "logging_steps": cfg.logging_steps,
        "lora_r": cfg.lora_r,
    }
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}.")
    if cfg.epochs <= 0 and cfg.max_steps <= 0:
        raise ConfigError("Set epochs > 0 or max_steps > 0: nothing would be trained.")
    if cfg.learning_rate is not None and not 0 < cfg.learning_rate < 1:
        raise ConfigError(f"learning_rate must lie in (0, 1), got {cfg.learning_rate}.")
    if cfg.merge_lora and not cfg.lora:
        raise ConfigError("merge_lora needs lora = true (--lora).")
    if cfg.merge_lora and world_size() > 1:
        raise ConfigError(
            "merge_lora runs in one process (sharded weights cannot be merged in place): under "
            "accelerate launch train the adapter without it; the adapter loads by name with "
            "its base, or merge it afterwards in a single process."
        )
    if mode != "rl":
        return
    if cfg.num_generations < 2:
        raise ConfigError(
            f"num_generations must be at least 2 (GRPO compares a group's completions), got "
            f"{cfg.num_generations}."
        )
    effective = cfg.batch_size * world_size() * cfg.grad_accum
    if effective % cfg.num_generations:
        raise ConfigError(
            f"num_generations ({cfg.num_generations}) must divide the effective batch "
            f"(batch_size {cfg.batch_size} x {world_size()} processes x grad_accum "
            f"{cfg.grad_accum} = {effective}): every prompt's group has to fit in one "
            f"generation batch. Use e.g. --batch-size {cfg.num_generations} or "
            f"--num-generations {_divisor(effective)}."
        )
    if cfg.max_completion_length < 1:
        raise ConfigError(
            f"max_completion_length must be at least 1, got {cfg.max_completion_length}."
        )
    if cfg.temperature <= 0:
        raise ConfigError(f"temperature must be > 0 for GRPO sampling, got {cfg.temperature}.")
    if cfg.vllm_mode not in ("colocate", "server"):
        raise ConfigError(f"vllm_mode {cfg.vllm_mode!r} is not one of colocate, server.")
    if cfg.ces_workers < 1:
        raise ConfigError(f"ces_workers must be at least 1, got {cfg.ces_workers}.")
    if cfg.ces_backend not in ("", "local", "ray", "http"):
        raise ConfigError(
            f"ces_backend {cfg.ces_backend!r} is not one of local, ray, http (or empty: http "
            "when [ces] url is set, else local)."
        )


def _divisor(n: int) -> int:
    """The largest divisor of ``n`` that is at least 2 (2 when there is none)."""
    return next((d for d in range(n, 1, -1) if n % d == 0), 2)
