"""Bad input is a clear error before any weights load: every case below starts from a model
whose weights file is garbage, so an error about the weights would mean they were read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.cli import cli
from bactrian.errors import ConfigError
from bactrian.train.config import load_train_config
from bactrian.train.data import TrainError
from bactrian.train.run import train
from tests.train.conftest import resplit


@pytest.fixture
def broken_weights(tiny_model: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "broken"
    shutil.copytree(tiny_model, dest)
    (dest / "model.safetensors").write_bytes(b"not a safetensors file")
    return dest


def _train(mode: str, model: Path, ds: Path, out: Path, **kw: object) -> None:
    train(mode, load_train_config(model=str(model), max_steps=1, **kw), dataset=ds, output=out)


def test_each_bad_input_is_named_before_the_weights_load(
    broken_weights: Path, money_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    # a dataset without the split the mode needs
    only_train = resplit(money_dataset, "train")
    with pytest.raises(TrainError, match="no 'rl' examples.*has train"):
        _train("rl", broken_weights, only_train, out, batch_size=4)
    resplit(money_dataset, "rl")
    with pytest.raises(TrainError, match="no 'train' examples"):
        _train("sft", broken_weights, money_dataset, out)
    resplit(money_dataset, "train")
    # not a dataset at all
    with pytest.raises(Exception, match="not a bactrian dataset"):
        _train("sft", broken_weights, tmp_path, out)
    # a num_generations that does not divide the effective batch
    with pytest.raises(ConfigError, match=r"num_generations \(4\) must divide the effective"):
        _train("rl", broken_weights, money_dataset, out, batch_size=3)
    # a strategy that does not match the model it starts from
    (broken_weights / "bactrian.json").write_text('{"strategy": "whole-file"}')
    with pytest.raises(TrainError, match="trained with the 'whole-file' strategy"):
        _train("sft", broken_weights, money_dataset, out, strategy="unified-diff")
    with pytest.raises(Exception, match="Unknown prompt strategy 'unified'. Did you mean"):
        _train("sft", broken_weights, money_dataset, out, strategy="unified")
    (broken_weights / "bactrian.json").unlink()
    # a model that does not load: no such name, no config, an HTTP model
    with pytest.raises(TrainError, match="Unknown model 'nosuch'.*model directory"):
        _train("sft", Path("nosuch"), money_dataset, out)
    with pytest.raises(TrainError, match="not a transformers model directory"):
        _train("sft", tmp_path, money_dataset, out)
    assert not out.exists()  # nothing was written either
    # the weights themselves: the one error that needs them, and it says so
    with pytest.raises(TrainError, match="does not load"):
        _train("sft", broken_weights, money_dataset, out)


def test_the_cli_says_what_is_wrong_in_one_line(money_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep").write_text("")
    args = ["train", "sft", "--dataset", str(money_dataset), "--output", str(out)]
    result = CliRunner().invoke(cli, [*args, "--model", str(tmp_path)])
    assert result.exit_code == 1
    assert "Error: Output directory" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["train", "rl", "--help"])
    assert result.exit_code == 0 and "--num-generations" in result.output
