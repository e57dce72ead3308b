"""Typed ``[aid]`` config and the experiments in it.

    [aid]
    model = "smollm2"              # the default arm's model (any [models.NAME])
    experiment = "coder-ab"        # the active experiment (default: the only one, if one)

    [aid.experiments.coder-ab]
    pins = { ada = "b" }           # pinned users
    [aid.experiments.coder-ab.arms.a]
    model = "smollm2"
    weight = 1
    [aid.experiments.coder-ab.arms.b]
    model = "coder"
    strategy = "search-replace"
    check = true                   # the CES judges this arm's proposals
    weight = 1

Every key has a default that works with no file at all (``smollm2``, its strategy, one arm).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.config import data_dir, load_section, read_file
from bactrian.errors import ConfigError


@dataclass
class AidConfig:
    socket: str = ""  # default: $XDG_RUNTIME_DIR/bactrian/aid.sock (see paths.default_socket)
    model: str = "smollm2"
    strategy: str = ""  # "" = the model's own strategy
    check: bool = False  # the default arm asks the CES to judge each proposal
    experiment: str = ""
    experiments: dict[str, Any] = field(default_factory=dict)
    max_frame_bytes: int = 8 * 1024 * 1024
    max_prompt_tokens: int = 0  # 0 = the model's max_prompt_tokens
    max_inflight: int = 4  # proposals in flight per connection
    max_clients: int = 64
    retrieval: bool = False  # lexical retrieval (SQLite FTS5) over the workspace
    retrieval_files: int = 3
    recent_files: int = 4  # recently edited files from the snapshot store
    max_file_bytes: int = 256 * 1024  # larger workspace files are not read as context
    log_content: bool = False  # never log prompts or file contents unless this is on
    metrics_db: str = ""  # default: <data dir>/aid/metrics.sqlite
    proposal_ttl_s: float = 3600.0
    build_ttl_s: float = 30.0
    build_probe: str = "auto"  # a buildstatus probe name, "auto" or "none"
    build_timeout_s: float = 120.0
    tools: list[str] = field(default_factory=list)  # extra tools, "module:attribute"
    # tool calls a model may make per proposal: -1 = what the strategy declares
    # (Strategy.tool_calls, 0 for the built-in ones); >= 0 overrides it (0: none)
    max_tool_calls: int = -1
    ces_timeout_s: float = 300.0
    restart_on_upgrade: bool = True  # a new bactrian installed: hand over to a new server
    upgrade_check_s: float = 5.0

    def metrics_path(self) -> Path:
        return (
            Path(self.metrics_db).expanduser()
            if self.metrics_db
            else data_dir() / "aid" / "metrics.sqlite"
        )


@dataclass(frozen=True)
class Arm:
    name: str
    model: str
    strategy: str = ""
    check: bool = False
    weight: float = 1.0

    def to_dict(self, experiment: str | None) -> dict[str, Any]:
        return {
            "experiment": experiment,
            "arm": self.name,
            "model": self.model,
            "strategy": self.strategy,
            "check": self.check,
        }


@dataclass(frozen=True)
class Experiment:
    name: str
    arms: tuple[Arm, ...]
    pins: dict[str, str] = field(default_factory=dict)


ARM_KEYS = {"model", "strategy", "check", "weight"}


def parse_experiments(table: dict[str, Any], default_model: str) -> dict[str, Experiment]:
    out: dict[str, Experiment] = {}
    for name, exp in table.items():
        where = f"[aid.experiments.{name}]"
        if not isinstance(exp, dict):
            raise ConfigError(f"{where} must be a table with an 'arms' table.")
        unknown = sorted(set(exp) - {"arms", "pins"})
        if unknown:
            raise ConfigError(f"Unknown key(s) {', '.join(unknown)} in {where}: use arms, pins.")
        arms_t = exp.get("arms", {})
        if not isinstance(arms_t, dict) or not arms_t:
            raise ConfigError(f"{where} needs at least one arm: [aid.experiments.{name}.arms.a].")
        arms = []
        for arm_name, a in arms_t.items():
            aw = f"{where} arm {arm_name!r}"
            if not isinstance(a, dict):
                raise ConfigError(f"{aw} must be a table (model, strategy, check, weight).")
            bad = sorted(set(a) - ARM_KEYS)
            if bad:
                raise ConfigError(
                    f"Unknown key(s) {', '.join(bad)} in {aw}: use {', '.join(sorted(ARM_KEYS))}."
                )
            try:
                weight = float(a.get("weight", 1.0))
            except (TypeError, ValueError):
                raise ConfigError(f"{aw}: weight must be a number.") from None
            if weight < 0:
                raise ConfigError(f"{aw}: weight must be >= 0, got {weight}.")
            arms.append(
                Arm(
                    str(arm_name),
                    str(a.get("model") or default_model),
                    str(a.get("strategy") or ""),
                    bool(a.get("check", False)),
                    weight,
                )
            )
        if sum(a.weight for a in arms) <= 0:
            raise ConfigError(f"{where}: the arms' weights add up to 0.")
        pins = exp.get("pins", {})
        if not isinstance(pins, dict):
            raise ConfigError(f'{where} pins must be a table user = "arm".')
        names = {a.name for a in arms}
        for user, arm in pins.items():
            if arm not in names:
                raise ConfigError(
                    f"{where} pins {user!r} to arm {arm!r}, which does not exist "
                    f"(arms: {', '.join(sorted(names))})."
                )
        out[str(name)] = Experiment(
            str(name), tuple(arms), {str(k): str(v) for k, v in pins.items()}
        )
    return out


def load_aid_config(path: Path | None = None, **overrides: Any) -> AidConfig:
    """``[aid]`` of ``path`` (default: the bactrian config file), env, overrides; the
    experiments are checked here so a bad one fails at start, not at the first request."""
    data = read_file(path) if path is not None else read_file()
    cfg = load_section(AidConfig, "aid", file_data=data, overrides=overrides)
    exps = parse_experiments(cfg.experiments, cfg.model)
    if cfg.experiment and cfg.experiment not in exps:
        raise ConfigError(
            f"[aid] experiment = {cfg.experiment!r} but there is no [aid.experiments."
            f"{cfg.experiment}] (experiments: {', '.join(sorted(exps)) or 'none'})."
        )
    if cfg.max_frame_bytes < 1024:
        raise ConfigError(
            f"[aid] max_frame_bytes must be at least 1024, got {cfg.max_frame_bytes}."
        )
    if cfg.max_tool_calls < -1:
        raise ConfigError("[aid] max_tool_calls must be -1 (the strategy's), 0 (none) or more.")
    if cfg.max_inflight < 1 or cfg.max_clients < 1:
        raise ConfigError("[aid] max_inflight and max_clients must be at least 1.")
    return cfg


def os_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())
