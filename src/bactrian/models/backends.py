"""Every model backend, registered here and nowhere else (importing a backend's module
registers nothing):

    MODEL_BACKENDS.get("openai")(config)         # any OpenAI-compatible server
    MODEL_BACKENDS.get("transformers")(config)   # local, with PEFT adapters
    MODEL_BACKENDS.get("scripted")(config)       # answers replayed from a script (tests)
    make_backend("smollm2")                      # by model name or ModelConfig
"""

from __future__ import annotations

from bactrian.errors import ConfigError
from bactrian.models import local, openai, scripted
from bactrian.models.base import (
    BackendFactory,
    ModelBackend,
    ModelConfig,
    load_model_config,
    resolve_model,
)
from bactrian.registry import Registry

MODEL_BACKENDS: Registry[BackendFactory] = Registry("model backend")
MODEL_BACKENDS.add("openai", openai.factory)
MODEL_BACKENDS.add("transformers", local.factory)
MODEL_BACKENDS.add("scripted", scripted.factory)  # replayed answers: a test double at the seam


def make_backend(config: ModelConfig | str | None = None) -> ModelBackend:
    """The backend that ``config`` names: a :class:`ModelConfig`, a model name, or
    (default) the unnamed ``[models]`` section."""
    if isinstance(config, str):
        config = resolve_model(config)
    config = config or load_model_config()
    if not config.configured:
        raise ConfigError(
            "No model is configured: set [models] base_url (or BACTRIAN_MODELS_BASE_URL, or "
            "--base-url) to an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1, or "
            "name a model (`bactrian models list`; `smollm2` works offline)."
        )
    return MODEL_BACKENDS.get(config.backend)(config)
