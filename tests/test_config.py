from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bactrian.config import load_section
from bactrian.errors import ConfigError, UnknownNameError
from bactrian.registry import Registry


@dataclass
class Demo:
    interval_s: float = 20.0
    enabled: bool = True
    name: str = "x"
    patterns: list[str] = field(default_factory=lambda: [".env"])
    where: Path | None = None


def test_defaults_file_env_and_overrides_in_order() -> None:
    assert load_section(Demo, "demo", file_data={}, env={}) == Demo()
    cfg = load_section(
        Demo,
        "demo",
        file_data={"demo": {"interval_s": 5, "patterns": ["a", "b"]}},
        env={"BACTRIAN_DEMO_ENABLED": "no", "BACTRIAN_DEMO_INTERVAL_S": "7.5"},
        overrides={"name": "y", "where": None},
    )
    assert cfg == Demo(interval_s=7.5, enabled=False, name="y", patterns=["a", "b"])
    cfg = load_section(Demo, "demo", file_data={}, env={"BACTRIAN_DEMO_PATTERNS": "x, y"})
    assert cfg.patterns == ["x", "y"]


def test_bad_values_and_unknown_keys_are_named() -> None:
    with pytest.raises(ConfigError, match="BACTRIAN_DEMO_INTERVAL_S: expected float"):
        load_section(Demo, "demo", file_data={}, env={"BACTRIAN_DEMO_INTERVAL_S": "soon"})
    with pytest.raises(ConfigError, match="Unknown setting.*intervall_s.*Valid settings"):
        load_section(Demo, "demo", file_data={"demo": {"intervall_s": 3}}, env={})


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[demo]\nname = 'from-file'\n")
    monkeypatch.setenv("BACTRIAN_CONFIG", str(path))
    assert load_section(Demo, "demo").name == "from-file"
    path.write_text("[demo\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_section(Demo, "demo")


def test_registry_suggests_close_names() -> None:
    reg: Registry[int] = Registry("build probe")
    reg.add("dune", 1)
    reg.add("command", 2)
    assert reg.get("dune") == 1
    with pytest.raises(
        UnknownNameError,
        match="Unknown build probe 'dun'. Did you mean: dune\\? Available: command, dune",
    ):
        reg.get("dun")
