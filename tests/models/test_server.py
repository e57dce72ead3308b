"""`bactrian models serve` over the real SmolLM2, with the OpenAI backend as its client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bactrian.errors import ModelError
from bactrian.models import OpenAICompatibleBackend, Sampling
from bactrian.models.server import ModelServer

MSGS = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def server(smollm2: Any) -> Iterator[ModelServer]:
    with ModelServer(smollm2, "smollm2") as srv:
        yield srv


def test_health_models_and_metrics(server: ModelServer) -> None:
    root = server.base_url.removesuffix("/v1")
    assert httpx.get(root + "/health").json()["status"] == "ok"
    models = httpx.get(server.base_url + "/models").json()
    assert [m["id"] for m in models["data"]] == ["smollm2"]
    OpenAICompatibleBackend(server.base_url, "smollm2").complete(MSGS, max_tokens=3)
    text = httpx.get(root + "/metrics").text
    assert 'bactrian_model_requests_total{route="chat",status="200"}' in text
    assert "bactrian_model_tokens_total" in text


def test_chat_through_the_server_equals_in_process(server: ModelServer, smollm2: Any) -> None:
    client = OpenAICompatibleBackend(server.base_url, "smollm2")
    remote = client.complete(MSGS, max_tokens=6)
    local = smollm2.complete(MSGS, max_tokens=6)
    assert remote.text == local.text
    assert remote.model == "smollm2"
    assert (remote.tokens_in, remote.tokens_out) == (local.tokens_in, local.tokens_out)


def test_n_samples_through_the_server(server: ModelServer) -> None:
    client = OpenAICompatibleBackend(server.base_url, "smollm2")
    replies = client.generate(MSGS, Sampling(max_tokens=4, temperature=1.0, seed=7), n=2)
    assert len(replies) == 2
    assert all(r.text for r in replies)


def test_streaming_through_the_server(server: ModelServer, smollm2: Any) -> None:
    client = OpenAICompatibleBackend(server.base_url, "smollm2")
    stream = client.stream(MSGS, Sampling(max_tokens=6))
    deltas = list(stream)
    assert len(deltas) >= 2
    assert "".join(deltas) == smollm2.complete(MSGS, max_tokens=6).text
    assert stream.completion is not None and stream.completion.tokens_out >= 1
    assert stream.completion.ttft_s is not None


def test_raw_completions_route(server: ModelServer) -> None:
    r = httpx.post(
        server.base_url + "/completions",
        json={"prompt": "let rec fact n =", "max_tokens": 4},
        timeout=120,
    )
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "text_completion" and data["choices"][0]["text"]
    assert data["usage"]["completion_tokens"] >= 1


def test_bad_requests_get_openai_errors(server: ModelServer) -> None:
    url = server.base_url + "/chat/completions"
    r = httpx.post(url, content=b"{nope")
    assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]
    r = httpx.post(url, json={"messages": "hi"})
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    r = httpx.post(url, json={"messages": MSGS, "max_tokens": 0})
    assert r.status_code == 400
    client = OpenAICompatibleBackend(server.base_url, "other-model")
    with pytest.raises(ModelError, match="HTTP 404: model 'other-model' is not served"):
        client.complete(MSGS, max_tokens=2)
