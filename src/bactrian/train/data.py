"""What a training run starts from, checked before any weights load: the model (a name or a
directory, resolved to a checkpoint whose config and tokenizer files are there), the dataset
and its split, the prompt strategy, the output directory; then the rows TRL reads.

Prompts are rendered by the strategy exactly as ``bactrian eval`` renders them (same layout,
same token budget: the model's ``max_prompt_tokens``, counted by its tokenizer), in TRL's
conversational prompt/completion format::

    SFT  {"prompt": [system, user], "completion": [assistant: the strategy's target],
          "example_id": ...}
    RL   {"prompt": [system, user], "example_id": ...}      # example_id reaches the reward
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.dataset.example import Example
from bactrian.dataset.splits import load_dataset
from bactrian.errors import BactrianError, ConfigError, UnknownNameError
from bactrian.models import ModelConfig, resolve_model
from bactrian.models.smollm2 import ensure_checkpoint
from bactrian.strategies import STRATEGIES, Strategy, get_strategy
from bactrian.train.config import SPLIT_OF, TrainConfig

META = "bactrian.json"


class TrainError(BactrianError):
    """A training run that cannot start or finish (bad dataset, model, output directory)."""


@dataclass
class ModelSource:
    """Where the weights come from: ``path`` (a transformers checkpoint), an optional PEFT
    ``adapter`` on top, the model config it was named by, and what a trained model recorded
    (its ``bactrian.json``)."""

    name: str
    path: Path
    config: ModelConfig
    adapter: Path | None = None
    trained: dict[str, Any] = field(default_factory=dict)


def resolve_source(model: str) -> ModelSource:
    """``model``: a named model (``smollm2``: the plain checkpoint converted from the GGUF,
    never the quantized load) or a directory (a checkpoint, or a trained bactrian output
    with its adapter). Only config files are read here."""
    p = Path(model).expanduser()
    if p.is_dir():
        trained = _read_meta(p)
        if (p / "adapter_config.json").is_file() and not (p / "config.json").is_file():
            base = str(trained.get("base_path") or _adapter_base(p))
            return ModelSource(
                str(p),
                _checkpoint(base),
                _model_config(trained, str(p)),
                adapter=p,
                trained=trained,
            )
        return ModelSource(
            str(p), _checkpoint(str(p)), _model_config(trained, str(p)), None, trained
        )
    try:
        mcfg = resolve_model(model)
    except UnknownNameError as exc:
        raise TrainError(f"{exc} Or pass a model directory to --model.") from None
    if mcfg.backend != "transformers" or not mcfg.path:
        raise TrainError(
            f"Model {model!r} is served over HTTP ({mcfg.backend}); training needs its weights: "
            "pass a local model directory or a [models.NAME] with backend = 'transformers' "
            "and a path."
        )
    path = ensure_checkpoint() if mcfg.path == "builtin:smollm2" else _checkpoint(mcfg.path)
    adapter = Path(mcfg.adapter).expanduser() if mcfg.adapter else None
    return ModelSource(model, path, mcfg, adapter, _read_meta(adapter) if adapter else {})


def _read_meta(p: Path) -> dict[str, Any]:
    meta = p / META
    if not meta.is_file():
        return {}
    try:
        data = json.loads(meta.read_text())
    except ValueError:
        raise TrainError(
            f"{meta} is not valid JSON; it was not written by `bactrian train`."
        ) from None
    return data if isinstance(data, dict) else {}


def _adapter_base(p: Path) -> str:
    try:
        cfg = json.loads((p / "adapter_config.json").read_text())
    except ValueError:
        raise TrainError(f"{p}/adapter_config.json is not valid JSON.") from None
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise TrainError(f"The adapter in {p} does not name its base model.")
    return str(base)


def _model_config(trained: dict[str, Any], path: str) -> ModelConfig:
    mc = trained.get("model_config") or {}
    return ModelConfig(
        name=str(trained.get("name") or Path(path).name),
        backend="transformers",
        path=path,
        strategy=str(mc.get("strategy") or trained.get("strategy") or "unified-diff"),
        max_prompt_tokens=int(mc.get("max_prompt_tokens") or 3072),
        max_tokens=int(mc.get("max_tokens") or 256),
    )


def _checkpoint(path: str) -> Path:
    p = Path(path).expanduser()
    if not (p / "config.json").is_file():
        raise TrainError(
            f"{p} is not a transformers model directory (no config.json): pass a directory "
            "written by save_pretrained (or a trained bactrian output), or a model name."
        )
    try:
        config = json.loads((p / "config.json").read_text())
    except ValueError:
        raise TrainError(f"{p}/config.json is not valid JSON: the model does not load.") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise TrainError(f"{p}/config.json names no model_type: the model does not load.")
    if not any((p / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise TrainError(f"{p} has no tokenizer files: save the tokenizer beside the model.")
    return p


def load_split(dataset: Path, split: str) -> tuple[dict[str, Any], list[Example]]:
    """The dataset's manifest and its ``split`` examples (sorted by id), or a clear error."""
    manifest, examples = load_dataset(Path(dataset))
    chosen = sorted((e for e in examples if e.split == split), key=lambda e: e.id)
    if not chosen:
        have = sorted({str(e.split) for e in examples})
        raise TrainError(
            f"Dataset {dataset} has no {split!r} examples (it has {', '.join(have) or 'none'}). "
            f"Rebuild it with a {split} share (`bactrian dataset build --rl-fraction ...`), or "
            "train in the mode that split serves."
        )
    return manifest, chosen


def pick_strategy(cfg: TrainConfig, source: ModelSource, examples: list[Example]) -> Strategy:
    """The strategy to render with: ``cfg.strategy``, else what the model was trained with,
    else the model's. It must match what the starting model learned and be able to state
    each example's target in its edit format."""
    trained_with = str(source.trained.get("strategy") or "")
    name = cfg.strategy or trained_with or source.config.strategy or "unified-diff"
    if name not in STRATEGIES.names():
        STRATEGIES.get(name)  # raises "Unknown prompt strategy ... Did you mean"
    if trained_with and name != trained_with:
        raise TrainError(
            f"Model {source.name} was trained with the {trained_with!r} strategy, not "
            f"{name!r}: its prompts and edit format would change under it. Pass "
            f"--strategy {trained_with}, or start from a model trained with {name}."
        )
    strategy = get_strategy(name)
    bad = [e.id for e in examples if not strategy.parse(strategy.target(e), e.files).well_formed]
    if bad:
        raise TrainError(
            f"The {name!r} strategy cannot state {len(bad)} of {len(examples)} examples' "
            f"targets in its edit format ({', '.join(bad[:3])}...): this dataset does not "
            "match it. Use --strategy unified-diff."
        )
    return strategy


def check_output(out: Path, *, resume: bool, overwrite: bool) -> None:
    """The output directory must be new or empty, unless ``resume`` (continue from its last
    checkpoint) or ``overwrite`` (clear it)."""
    if resume and overwrite:
        raise TrainError("--resume and --overwrite exclude each other: pick one.")
    if out.exists() and not out.is_dir():
        raise TrainError(f"Output {out} is a file; pass a directory to --output.")
    busy = out.is_dir() and any(out.iterdir())
    if resume and not busy:
        raise TrainError(f"--resume: {out} holds no earlier run to continue.")
    if busy and not (resume or overwrite):
        raise TrainError(
            f"Output directory {out} is not empty. Pass --resume to continue its run from the "
            "last checkpoint, --overwrite to replace it, or another --output."
        )


Counter = Callable[[str], int]


def sft_rows(
    examples: list[Example], strategy: Strategy, count: Counter, budget: int
) -> list[dict[str, Any]]:
    rows = []
    for ex in examples:
        rendered = strategy.render_input(ex, count=count, budget=budget)
        rows.append(
            {
                "prompt": rendered.messages,
                "completion": [{"role": "assistant", "content": strategy.target(ex)}],
                "example_id": ex.id,
            }
        )
    return rows


def rl_rows(
    examples: list[Example], strategy: Strategy, count: Counter, budget: int
) -> list[dict[str, Any]]:
    return [
        {
            "prompt": strategy.render_input(ex, count=count, budget=budget).messages,
            "example_id": ex.id,
        }
        for ex in examples
    ]


def split_for(mode: str) -> str:
    if mode not in SPLIT_OF:
        raise ConfigError(f"Unknown training mode {mode!r}: use sft or rl.")
    return SPLIT_OF[mode]
