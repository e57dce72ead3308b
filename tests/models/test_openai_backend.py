from __future__ import annotations

import pytest

from bactrian.errors import ConfigError, ModelError, UnknownNameError
from bactrian.models import (
    MODEL_BACKENDS,
    ModelBackend,
    ModelConfig,
    OpenAICompatibleBackend,
    make_backend,
)
from tests.models.fake_openai import FakeOpenAI

MSGS = [{"role": "user", "content": "say hello"}]


def test_complete_speaks_the_chat_completions_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sekrit")
    with FakeOpenAI(["hello there"]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "tiny", api_key_env="MY_KEY")
        reply = backend.complete(MSGS, max_tokens=7, temperature=0.2, stop=["\n\n"])
    assert isinstance(backend, ModelBackend)
    assert reply.text == "hello there"
    assert reply.model == "tiny"
    assert reply.usage["completion_tokens"] == 2
    assert reply.latency_s > 0
    body = server.requests[0]
    assert body == {
        "model": "tiny",
        "messages": MSGS,
        "max_tokens": 7,
        "temperature": 0.2,
        "stop": ["\n\n"],
    }
    assert server.headers[0]["Authorization"] == "Bearer sekrit"


def test_base_url_without_v1_works() -> None:
    with FakeOpenAI(["ok"]) as server:
        backend = OpenAICompatibleBackend(server.base_url.removesuffix("/v1"), "m")
        assert backend.complete(MSGS).text == "ok"


def test_retries_on_429_and_5xx_then_succeeds() -> None:
    with FakeOpenAI([(429, "slow down"), (503, "loading"), "finally"]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "m", max_retries=3, backoff_s=0.01)
        assert backend.complete(MSGS).text == "finally"
    assert len(server.requests) == 3


def test_gives_up_after_max_retries_with_the_last_error() -> None:
    with FakeOpenAI([(500, "boom")] * 3) as server:
        backend = OpenAICompatibleBackend(server.base_url, "m", max_retries=2, backoff_s=0.01)
        with pytest.raises(ModelError, match="failed 3 times.*HTTP 500: boom"):
            backend.complete(MSGS)


def test_client_error_is_not_retried_and_names_the_server_message() -> None:
    with FakeOpenAI([(404, "model 'nope' not found"), "never"]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "nope", backoff_s=0.01)
        with pytest.raises(ModelError, match="HTTP 404: model 'nope' not found"):
            backend.complete(MSGS)
    assert len(server.requests) == 1


def test_connection_refused_is_a_model_error() -> None:
    with FakeOpenAI() as server:
        url = server.base_url
    backend = OpenAICompatibleBackend(url, "m", max_retries=1, backoff_s=0.01, timeout_s=2)
    with pytest.raises(ModelError, match="connection failed"):
        backend.complete(MSGS)


def test_make_backend_from_config_and_registry() -> None:
    with pytest.raises(ConfigError, match="No model is configured"):
        make_backend(ModelConfig())
    with pytest.raises(UnknownNameError, match="Did you mean: openai"):
        make_backend(ModelConfig(backend="opnai", base_url="http://x"))
    assert "openai" in MODEL_BACKENDS
    with FakeOpenAI(["via config"]) as server:
        backend = make_backend(ModelConfig(base_url=server.base_url, model="m"))
        reply = backend.complete(MSGS)
    assert (reply.text, reply.model) == ("via config", "m")
