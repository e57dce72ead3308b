"""Model backends (shared by the describer, evaluation, training and the AID sidecar).

    from bactrian.models import make_backend, Sampling
    backend = make_backend("smollm2")                     # a named model (offline default)
    [reply] = backend.generate(messages, Sampling(max_tokens=64))
    reply.text, reply.usage, reply.ttft_s, reply.latency_s
    for delta in backend.stream(messages): ...            # text deltas

Backends: ``openai`` (any OpenAI-compatible server), ``transformers`` (local, with PEFT
adapters). ``bactrian models serve`` puts any local backend behind an OpenAI-compatible server.
See ``docs/models.md``.
"""

from bactrian.models.backends import MODEL_BACKENDS, make_backend
from bactrian.models.base import (
    BUILTIN_MODELS,
    BackendBase,
    Cancelled,
    CancelToken,
    Completion,
    ModelBackend,
    ModelConfig,
    Sampling,
    TextStream,
    load_model_config,
    named_models,
    resolve_model,
)
from bactrian.models.openai import OpenAICompatibleBackend

__all__ = [
    "BUILTIN_MODELS",
    "MODEL_BACKENDS",
    "BackendBase",
    "CancelToken",
    "Cancelled",
    "Completion",
    "ModelBackend",
    "ModelConfig",
    "OpenAICompatibleBackend",
    "Sampling",
    "TextStream",
    "load_model_config",
    "make_backend",
    "named_models",
    "resolve_model",
]
