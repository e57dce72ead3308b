"""Typed configuration: one optional TOML file, ``BACTRIAN_*`` environment variables, and
explicit overrides (CLI options), in increasing order of precedence.

Each part of bactrian defines its own frozen-ish dataclass of settings, every field with a
default that works on a laptop, and loads it with :func:`load_section`::

    @dataclass
    class SnapshotConfig:
        interval_s: float = 20.0

    cfg = load_section(SnapshotConfig, "snapshot")   # [snapshot] interval_s = 5
                                                     # or BACTRIAN_SNAPSHOT_INTERVAL_S=5

The file is ``$BACTRIAN_CONFIG`` if set, else ``$XDG_CONFIG_HOME/bactrian/config.toml``
(``~/.config/bactrian/config.toml``); a missing file means "all defaults".
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from bactrian.errors import ConfigError

T = TypeVar("T")


def config_path() -> Path:
    explicit = os.environ.get("BACTRIAN_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bactrian" / "config.toml"


def data_dir() -> Path:
    """Where bactrian keeps its own data (snapshot stores, datasets, CES workers)."""
    explicit = os.environ.get("BACTRIAN_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "bactrian"


def read_file(path: Path | None = None) -> dict[str, Any]:
    """The parsed TOML config file, or ``{}`` when there is none."""
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"Config file {path} is not valid TOML: {exc}. Fix the file or point "
            "BACTRIAN_CONFIG at another one."
        ) from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}.") from exc


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        is_none = value is None or (isinstance(value, str) and value.lower() in ("", "none"))
        if is_none and type(None) in args:
            return None
        return _coerce(value, non_none[0], where)
    if origin in (list, tuple):
        inner = args[0] if args else str
        if isinstance(value, str):
            items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise ConfigError(f"{where}: expected a list, got {value!r}.")
        out = [_coerce(v, inner, where) for v in items]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}.")
        return dict(value)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
        if tp is Path:
            return Path(str(value)).expanduser()
    except (TypeError, ValueError):
        name = getattr(tp, "__name__", str(tp))
        raise ConfigError(f"{where}: expected {name}, got {value!r}.") from None
    return value


def load_section(
    cls: type[T],
    section: str,
    *,
    file_data: dict[str, Any] | None = None,
    env: typing.Mapping[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> T:
    """Build ``cls`` (a dataclass) from defaults ← file ``[section]`` ← env ← overrides.

    ``overrides`` with value ``None`` are ignored, so CLI options can be passed straight through.
    Unknown keys in the file are an error naming the valid ones.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    env = os.environ if env is None else env
    data = read_file() if file_data is None else file_data
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}] in the config file must be a table.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) {', '.join(unknown)} in [{section}] of {config_path()}. "
            f"Valid settings: {', '.join(sorted(fields))}."
        )
    values: dict[str, Any] = {}
    for name in fields:
        where = f"[{section}] {name}"
        if name in table:
            values[name] = _coerce(table[name], hints[name], where)
        env_name = f"BACTRIAN_{section.upper()}_{name.upper()}"
        if env_name in env:
            values[name] = _coerce(env[env_name], hints[name], env_name)
        if overrides and overrides.get(name) is not None:
            values[name] = _coerce(overrides[name], hints[name], f"option {name}")
    return cls(**values)
