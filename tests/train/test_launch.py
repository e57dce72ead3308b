"""The shipped configs load, and `accelerate launch` runs `bactrian train` for real: two CPU
processes (DDP over gloo) train the tiny model, and only rank 0 checks and writes the output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bactrian.train.config import load_train_config, validate

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in (CONFIGS / "accelerate").glob("*.yaml")))
def test_accelerate_configs_load(name: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(CONFIGS / "accelerate" / name))
    assert cfg.num_processes >= 1 and cfg.mixed_precision == "bf16"


@pytest.mark.parametrize("name,mode", [("sft.toml", "sft"), ("rl.toml", "rl")])
def test_training_configs_are_valid(name: str, mode: str) -> None:
    validate(load_train_config(CONFIGS / "train" / name), mode)


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(
    tiny_model: Path, money_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "bactrian.cli", "train", "sft", "--model", str(tiny_model),
        "--dataset", str(money_dataset), "--output", str(out), "--max-steps", "2",
        "--max-length", "4096", "--name", "tiny-ddp", "--json",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    meta = json.loads((out / "bactrian.json").read_text())
    assert meta["steps"] == 2 and meta["kind"] == "full"
    assert (out / "model.safetensors").is_file()
