"""LoRA SFT on SmolLM2 for a few steps, through the demo's training step: the adapter saves
beside its base, loads by name in the local backend, and eval compare runs before/after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bactrian.ces.api import shutdown
from bactrian.dataset.splits import load_dataset
from bactrian.models import make_backend
from bactrian.train.demo import DEMO_MODEL, run_demo_training
from tests.evaluate.conftest import write_config
from tests.models.modelcache import use_model_cache
from tests.train.conftest import resplit

pytestmark = pytest.mark.slow


def test_lora_sft_on_smollm2_and_the_demo_comparison(
    money_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_model_cache()
    write_config(tmp_path, {}, monkeypatch)  # [eval] stages: real ocamlc for the CES
    _, exs = load_dataset(money_dataset)
    exs.sort(key=lambda e: e.created_at)
    resplit(money_dataset, {exs[0].id: "train", exs[1].id: "heldout"})
    shown: list[str] = []
    try:
        result = run_demo_training(
            money_dataset, tmp_path / "demo", shown.append, max_steps=3, max_tokens=24
        )
    finally:
        shutdown()
    out = Path(result.output)
    meta = json.loads((out / "bactrian.json").read_text())
    assert meta["kind"] == "lora-adapter" and meta["steps"] == 3 and meta["config"]["lora"]
    assert (out / "adapter_config.json").is_file() and not (out / "config.json").exists()
    assert result.before["examples"] == result.after["examples"] == 1
    assert result.comparison["model_a"] == "smollm2" and result.comparison["model_b"] == DEMO_MODEL
    assert any(line.startswith("caveat: 1 training examples and 3 steps") for line in shown)
    assert any("vs smollm2: difference" in line for line in shown)
    backend = make_backend(DEMO_MODEL)  # loads by name: base + adapter
    assert backend.model.peft_config  # type: ignore[attr-defined]
