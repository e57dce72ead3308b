"""Models registered by name (`bactrian models add`): a checkpoint, an adapter, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.cli import cli
from bactrian.errors import ConfigError
from bactrian.models import resolve_model
from bactrian.models.base import register_directory, register_model


def test_models_add_registers_a_checkpoint_and_eval_finds_it(tiny_model: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "add", "tiny", str(tiny_model)])
    assert result.exit_code == 0, result.output
    cfg = resolve_model("tiny")
    assert cfg.backend == "transformers" and cfg.path == str(tiny_model.resolve())
    assert "tiny" in CliRunner().invoke(cli, ["models", "list"]).output


def test_an_adapter_is_registered_with_its_base(tiny_model: Path, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(tiny_model)})
    )
    (adapter / "bactrian.json").write_text(
        json.dumps({"model_config": {"strategy": "search-replace", "max_prompt_tokens": 512}})
    )
    cfg = register_directory("tiny-lora", adapter)
    assert cfg.path == str(tiny_model) and cfg.adapter == str(adapter.resolve())
    assert cfg.strategy == "search-replace" and cfg.max_prompt_tokens == 512


def test_bad_registrations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid"):
        register_model("../evil", path=str(tmp_path))
    with pytest.raises(ConfigError, match="built-in"):
        register_model("smollm2", path=str(tmp_path))
    with pytest.raises(ConfigError, match="holds no model"):
        register_directory("empty", tmp_path)
    result = CliRunner().invoke(cli, ["models", "add", "empty", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
