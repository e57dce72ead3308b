"""The model-backend seam: one Protocol, a registry of named implementations, typed config.

A backend turns chat messages into ``n`` completions under :class:`Sampling` settings
(:meth:`ModelBackend.generate`), or streams one completion as text deltas
(:meth:`ModelBackend.stream`). Every call can be cancelled through a :class:`CancelToken`;
each :class:`Completion` carries token counts, the time to its first token and its total
latency.

Models are named in config, one ``[models.NAME]`` table each (same keys as
:class:`ModelConfig`); ``smollm2`` (SmolLM2-135M-Instruct, offline) is built in::

    [models.qwen]
    backend = "openai"
    base_url = "http://127.0.0.1:8000/v1"
    model = "Qwen/Qwen2.5-Coder-1.5B-Instruct"
    temperature = 0.2
    strategy = "search-replace"

The flat keys of ``[models]`` itself stay the "unnamed" default model (used by the describer).
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bactrian.config import data_dir, load_section, read_file
from bactrian.errors import ConfigError, ModelError, UnknownNameError

Messages = list[dict[str, str]]


class Cancelled(ModelError):
    """A generation was cancelled through its :class:`CancelToken`."""


class CancelToken:
    """Set from any thread to stop a running generation (local or HTTP) at its next token."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` (a backoff); True when cancelled meanwhile."""
        return self._event.wait(seconds)

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("The generation was cancelled.")


@dataclass
class Sampling:
    """Sampling settings of one call. ``temperature`` 0 means greedy decoding."""

    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    timeout_s: float | None = None  # wall clock for the whole call (None: backend default)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must lie in (0, 1], got {self.top_p}.")


@dataclass
class Completion:
    """One model reply. ``usage`` is the token accounting (``prompt_tokens``,
    ``completion_tokens``, ``total_tokens`` where known)."""

    text: str
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    model: str = ""
    ttft_s: float | None = None  # time to first token, when streamed or measured
    finish_reason: str = "stop"  # "stop" | "length" | "cancelled" | "timeout"

    @property
    def tokens_in(self) -> int:
        return int(self.usage.get("prompt_tokens", 0))

    @property
    def tokens_out(self) -> int:
        return int(self.usage.get("completion_tokens", 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "usage": dict(self.usage),
            "latency_s": self.latency_s,
            "model": self.model,
            "ttft_s": self.ttft_s,
            "finish_reason": self.finish_reason,
        }


class TextStream(Iterator[str]):
    """An iterator of text deltas; once exhausted, :attr:`completion` holds the whole reply
    (text, token counts, time to first token, latency). :meth:`cancel` stops it early."""

    def __init__(self, deltas: Iterator[str], cancel: CancelToken) -> None:
        self._deltas = deltas
        self.cancel_token = cancel
        self.completion: Completion | None = None

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        return next(self._deltas)

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def text(self) -> str:
        """Drain the stream and return the whole text."""
        return "".join(self)


@runtime_checkable
class ModelBackend(Protocol):
    """Anything that turns chat messages into completions."""

    name: str

    def complete(
        self,
        messages: Messages,
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Completion: ...

    def generate(
        self,
        messages: Messages,
        sampling: Sampling | None = None,
        *,
        n: int = 1,
        cancel: CancelToken | None = None,
    ) -> list[Completion]: ...

    def stream(
        self,
        messages: Messages,
        sampling: Sampling | None = None,
        *,
        cancel: CancelToken | None = None,
    ) -> TextStream: ...

    def count_tokens(self, text: str) -> int: ...

    def close(self) -> None: ...


class BackendBase:
    """Shared defaults: ``complete`` is ``generate(n=1)``; ``count_tokens`` approximates
    (about 4 characters a token) for backends that have no tokenizer at hand."""

    name = "base"
    default_sampling: Sampling = Sampling()

    def generate(
        self,
        messages: Messages,
        sampling: Sampling | None = None,
        *,
        n: int = 1,
        cancel: CancelToken | None = None,
    ) -> list[Completion]:
        raise NotImplementedError

    def stream(
        self,
        messages: Messages,
        sampling: Sampling | None = None,
        *,
        cancel: CancelToken | None = None,
    ) -> TextStream:
        """A :class:`TextStream` over :meth:`_stream`'s deltas (which fills in the stream's
        completion when it ends)."""
        sampling = sampling or self.default_sampling
        cancel = cancel or CancelToken()
        result = TextStream(iter(()), cancel)
        result._deltas = self._stream(messages, sampling, cancel, result)
        return result

    def _stream(
        self, messages: Messages, sampling: Sampling, cancel: CancelToken, result: TextStream
    ) -> Iterator[str]:
        raise NotImplementedError

    def complete(
        self,
        messages: Messages,
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Completion:
        sampling = replace(
            self.default_sampling,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=list(stop or []),
        )
        return self.generate(messages, sampling, n=1)[0]

    def count_tokens(self, text: str) -> int:
        return max(1, (len(text) + 3) // 4) if text else 0

    def close(self) -> None:
        pass


@dataclass
class ModelConfig:
    """One model: the flat keys of ``[models]`` (the unnamed default) or a ``[models.NAME]``
    table. ``backend`` is ``openai`` (``base_url``, ``model``, key from ``api_key_env``) or
    ``transformers`` (``path``: a model directory or ``builtin:smollm2``; optional
    ``adapter``, a PEFT adapter directory). With neither ``base_url`` nor ``path`` no model
    is configured: callers fall back to offline behaviour (e.g. the deterministic describer).
    """

    backend: str = "openai"
    base_url: str = ""
    model: str = ""
    path: str = ""
    adapter: str = ""
    device_map: str = "cpu"  # "cpu", "auto", "cuda:0", …
    dtype: str = "float32"  # "float32" | "bfloat16" | "float16"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0  # per HTTP request; for local backends, per generation
    max_retries: int = 3
    backoff_s: float = 0.5
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    strategy: str = "unified-diff"
    max_prompt_tokens: int = 6144
    # CPU threads of a local backend (torch, process-wide); 0: torch's default, every core. On
    # a machine shared with builds fewer are much faster (idle torch threads spin): measured
    # 8x on 2 busy cores with 1 thread instead of 2
    threads: int = 0
    name: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.path)

    def sampling(self, **overrides: Any) -> Sampling:
        """The model's sampling defaults with ``overrides`` (``None`` values ignored)."""
        values: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(self.stop),
            "seed": self.seed,
            "timeout_s": self.timeout_s,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return Sampling(**values)

    def describe(self) -> dict[str, Any]:

        return asdict(self)


BUILTIN_MODELS: dict[str, ModelConfig] = {
    "smollm2": ModelConfig(
        name="smollm2",
        backend="transformers",
        path="builtin:smollm2",
        model="SmolLM2-135M-Instruct",
        timeout_s=1800.0,  # a wall-clock cap per generation; CPU prefill of long prompts is slow
        max_tokens=256,
        max_prompt_tokens=3072,
    ),
}


def _split_models_table(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    table = data.get("models", {})
    if not isinstance(table, dict):
        raise ConfigError("[models] in the config file must be a table.")
    flat = {k: v for k, v in table.items() if not isinstance(v, dict)}
    named = {k: v for k, v in table.items() if isinstance(v, dict)}
    return flat, named


def load_model_config(**overrides: Any) -> ModelConfig:
    """The unnamed default model: flat keys of ``[models]``, ``BACTRIAN_MODELS_*``, overrides."""
    flat, _ = _split_models_table(read_file())
    return load_section(ModelConfig, "models", file_data={"models": flat}, overrides=overrides)


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REGISTERED_KEYS = ("path", "adapter", "strategy", "max_prompt_tokens", "max_tokens", "dtype")


def registry_path() -> Path:
    """Where ``bactrian models add`` (and ``bactrian train``) register local models by name:
    ``data_dir()/models.json`` (outside any workspace)."""
    return data_dir() / "models.json"


def registered_models() -> dict[str, dict[str, Any]]:
    """The models registered by name (``{name: {path, adapter, strategy, ...}}``)."""
    path = registry_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        raise ConfigError(
            f"{path} is not valid JSON; remove it and register the models again "
            "(`bactrian models add NAME DIR`)."
        ) from None
    return (
        {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}
        if isinstance(data, dict)
        else {}
    )


def register_model(name: str, **entry: Any) -> ModelConfig:
    """Register a local transformers model under ``name`` (``path``: its checkpoint; optional
    ``adapter``, ``strategy``, ``max_prompt_tokens``, ``max_tokens``, ``dtype``); a name the
    built-ins hold is refused. Returns its config."""
    if not MODEL_NAME.fullmatch(name):
        raise ConfigError(
            f"Model name {name!r} is not valid: letters, digits, '.', '_' and '-' only "
            "(at most 64, starting with a letter or digit)."
        )
    if name in BUILTIN_MODELS:
        raise ConfigError(f"{name!r} is a built-in model; register under another name.")
    unknown = sorted(set(entry) - set(REGISTERED_KEYS))
    if unknown:
        raise ConfigError(f"Unknown model setting(s) {', '.join(unknown)}.")
    clean = {k: v for k, v in entry.items() if v not in (None, "")}
    models = registered_models()
    models[name] = clean
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(models, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return named_models()[name]


def register_directory(name: str, directory: Path) -> ModelConfig:
    """Register the model in ``directory`` under ``name``: a transformers checkpoint, or a
    PEFT adapter (``adapter_config.json`` naming its base). A ``bactrian.json`` beside it (a
    ``bactrian train`` output) gives its strategy and prompt budget."""
    d = Path(directory).expanduser().resolve()
    meta: dict[str, Any] = {}
    if (d / "bactrian.json").is_file():
        try:
            meta = json.loads((d / "bactrian.json").read_text())
        except ValueError:
            raise ConfigError(f"{d}/bactrian.json is not valid JSON.") from None
    mc = dict(meta.get("model_config") or {}) if isinstance(meta, dict) else {}
    entry: dict[str, Any] = {k: mc.get(k) for k in ("strategy", "max_prompt_tokens", "max_tokens")}
    if (d / "config.json").is_file():
        entry["path"] = str(d)
    elif (d / "adapter_config.json").is_file():
        try:
            base = json.loads((d / "adapter_config.json").read_text()).get(
                "base_model_name_or_path"
            )
        except (ValueError, AttributeError):
            base = None
        base = meta.get("base_path") or base
        if not base or not (Path(str(base)) / "config.json").is_file():
            raise ConfigError(
                f"The adapter in {d} names base model {base!r}, which is not a model directory "
                "here; register the base's directory, or retrain."
            )
        entry.update(path=str(base), adapter=str(d))
    else:
        raise ConfigError(
            f"{d} holds no model: no config.json (a checkpoint) and no adapter_config.json "
            "(a PEFT adapter). Point at a directory written by save_pretrained or `bactrian train`."
        )
    return register_model(name, **entry)


def named_models() -> dict[str, ModelConfig]:
    """Every named model: the built-in ones, the registered ones (``models.json``), then the
    config file's ``[models.NAME]``."""
    _, named = _split_models_table(read_file())
    out = dict(BUILTIN_MODELS)
    for name, entry in registered_models().items():
        if name in out or not MODEL_NAME.fullmatch(name):
            continue
        values = {k: v for k, v in entry.items() if k in REGISTERED_KEYS}
        out[name] = ModelConfig(name=name, backend="transformers", **values)
    for name, table in named.items():
        base = BUILTIN_MODELS.get(name)
        merged = {**(base.describe() if base else {}), **table}
        merged.pop("name", None)
        section = f"models.{name}"
        cfg = load_section(ModelConfig, section, file_data={section: merged}, env={})
        cfg.name = name
        out[name] = cfg
    return out


def resolve_model(name: str, **overrides: Any) -> ModelConfig:
    """The named model ``name`` (with ``overrides``); an unknown name raises
    :class:`UnknownNameError` with "Did you mean" and the list of names."""
    models = named_models()
    if name not in models:
        names = sorted(models)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean: {close[0]}?" if close else ""
        raise UnknownNameError(
            f"Unknown model {name!r}.{hint} Available: {', '.join(names)}. Name a model in a "
            f"[models.{name}] table of the config file."
        )
    cfg = models[name]
    values = {k: v for k, v in overrides.items() if v is not None}
    return replace(cfg, **values) if values else cfg


BackendFactory = Callable[[ModelConfig], ModelBackend]
"""What :data:`bactrian.models.backends.MODEL_BACKENDS` holds."""
