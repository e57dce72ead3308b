"""The model-backend seam: one Protocol, a registry of named implementations, typed config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bactrian.config import load_section
from bactrian.errors import ConfigError
from bactrian.registry import Registry


@dataclass
class Completion:
    """One model reply. ``usage`` is the server's token accounting (may be empty)."""

    text: str
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    model: str = ""


@runtime_checkable
class ModelBackend(Protocol):
    """Anything that turns chat messages into a completion."""

    name: str

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Completion: ...


@dataclass
class ModelConfig:
    """Section ``[models]``. With ``base_url`` empty no model is configured: callers fall back
    to offline behaviour (e.g. the deterministic describer)."""

    backend: str = "openai"
    base_url: str = ""
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5

    @property
    def configured(self) -> bool:
        return bool(self.base_url)


def load_model_config(**overrides: Any) -> ModelConfig:
    return load_section(ModelConfig, "models", overrides=overrides)


BackendFactory = Callable[[ModelConfig], ModelBackend]
MODEL_BACKENDS: Registry[BackendFactory] = Registry("model backend")


def make_backend(config: ModelConfig | None = None) -> ModelBackend:
    """The backend that ``config`` (default: the ``[models]`` section) names."""
    config = config or load_model_config()
    if not config.configured:
        raise ConfigError(
            "No model is configured: set [models] base_url (or BACTRIAN_MODELS_BASE_URL, or "
            "--base-url) to an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."
        )
    return MODEL_BACKENDS.get(config.backend)(config)
