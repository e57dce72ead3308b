"""SFT with TRL on a tiny model built here: 2 steps change the weights, the output loads with
AutoModelForCausalLM, carries bactrian.json, and is usable by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bactrian.models import resolve_model
from bactrian.train.config import load_train_config
from bactrian.train.data import TrainError
from bactrian.train.run import METRICS_LOG, train
from tests.train.conftest import train_config_file


def _weights(path: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_sft_two_steps_changes_the_weights_and_saves_a_loadable_model(
    tiny_model: Path, money_dataset: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "sft"
    cfg = load_train_config(
        train_config_file(tmp_path),
        model=str(tiny_model),
        max_steps=2,
        learning_rate=1e-2,
        max_length=4096,
    )
    lines: list[str] = []
    meta = train("sft", cfg, dataset=money_dataset, output=out, name="tiny-sft", echo=lines.append)

    before, after = _weights(tiny_model), _weights(out)
    changed = [k for k in before if not torch.equal(before[k], after[k])]  # type: ignore[arg-type]
    assert changed, "two SFT steps changed no weight"
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.config.num_hidden_layers == 2
    saved = json.loads((out / "bactrian.json").read_text())
    assert saved == json.loads(json.dumps(meta))
    assert saved["steps"] == 2 and saved["kind"] == "full" and saved["split"] == "train"
    assert saved["base_path"] == str(tiny_model) and saved["strategy"] == "unified-diff"
    assert len(saved["manifest_hash"]) == 16 and saved["dataset"] == str(money_dataset.resolve())
    assert saved["config"]["max_steps"] == 2 and "train_loss" in saved["metrics"]
    logged = [json.loads(x) for x in (out / METRICS_LOG).read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2]
    assert any("loss=" in line for line in lines)
    # registered by name: eval and the sidecar find it
    registered = resolve_model("tiny-sft")
    assert registered.backend == "transformers" and registered.path == str(out.resolve())


def test_a_non_empty_output_is_refused_before_any_weights_load(
    tiny_model: Path, money_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("mine")
    cfg = load_train_config(model=str(tiny_model), max_steps=1)
    with pytest.raises(TrainError, match="not empty.*--resume.*--overwrite"):
        train("sft", cfg, dataset=money_dataset, output=out)
    assert (out / "x").read_text() == "mine"


def test_resume_continues_from_the_last_checkpoint(
    tiny_model: Path, money_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    first = load_train_config(model=str(tiny_model), max_steps=2, save_steps=1, max_length=4096)
    train("sft", first, dataset=money_dataset, output=out, register=False)
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-1", "checkpoint-2"]
    more = load_train_config(model=str(tiny_model), max_steps=3, save_steps=1, max_length=4096)
    meta = train("sft", more, dataset=money_dataset, output=out, resume=True, register=False)
    assert meta["steps"] == 3
    logged = [json.loads(x) for x in (out / METRICS_LOG).read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2, 3]  # step 3 only was new
    with pytest.raises(TrainError, match="holds no earlier run"):
        train("sft", more, dataset=money_dataset, output=tmp_path / "new", resume=True)
