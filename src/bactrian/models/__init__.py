"""Model backends (shared by the describer, evaluation, training and the AID sidecar).

from bactrian.models import make_backend, ModelConfig
backend = make_backend(ModelConfig(base_url="http://127.0.0.1:8000/v1", model="qwen"))
reply = backend.complete([{"role": "user", "content": "hi"}], max_tokens=64)
reply.text, reply.usage, reply.latency_s, reply.model
"""

from bactrian.models.base import (
    MODEL_BACKENDS,
    Completion,
    ModelBackend,
    ModelConfig,
    load_model_config,
    make_backend,
)
from bactrian.models.openai import OpenAICompatibleBackend

__all__ = [
    "MODEL_BACKENDS",
    "Completion",
    "ModelBackend",
    "ModelConfig",
    "OpenAICompatibleBackend",
    "load_model_config",
    "make_backend",
]
