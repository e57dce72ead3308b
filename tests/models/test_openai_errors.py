"""The OpenAI backend against a scripted loopback server: streaming, cut streams, malformed
replies, timeouts, retries and cancellation."""

from __future__ import annotations

import pytest

from bactrian.errors import ModelError
from bactrian.models import Cancelled, CancelToken, OpenAICompatibleBackend, Sampling
from tests.models.fake_openai import FakeOpenAI, Hang, Raw, Stream

MSGS = [{"role": "user", "content": "hi"}]


def backend(url: str, **kw: object) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(url, "m", backoff_s=0.01, **kw)  # type: ignore[arg-type]


def test_stream_yields_deltas_and_usage() -> None:
    with FakeOpenAI([Stream(["Hel", "lo", "!"])]) as server:
        stream = backend(server.base_url).stream(MSGS)
        assert list(stream) == ["Hel", "lo", "!"]
    assert server.requests[0]["stream"] is True
    c = stream.completion
    assert c is not None
    assert (c.text, c.tokens_in, c.tokens_out, c.finish_reason) == ("Hello!", 3, 2, "stop")
    assert c.ttft_s is not None and c.ttft_s <= c.latency_s


def test_stream_retries_before_the_first_delta() -> None:
    with FakeOpenAI([(503, "warming up"), Stream(["ok"])]) as server:
        assert backend(server.base_url).stream(MSGS).text() == "ok"
    assert len(server.requests) == 2


def test_cut_stream_is_an_error_not_a_short_answer() -> None:
    with FakeOpenAI([Stream(["par", "tial"], cut=True)]) as server:
        stream = backend(server.base_url).stream(MSGS)
        with pytest.raises(ModelError, match=r"ended before 'data: \[DONE\]'"):
            list(stream)


def test_garbage_event_in_a_stream_is_named() -> None:
    with (
        FakeOpenAI([Stream(["a"], garbage=True)]) as server,
        pytest.raises(ModelError, match="not JSON"),
    ):
        backend(server.base_url).stream(MSGS).text()


def test_malformed_json_reply_is_a_model_error() -> None:
    with (
        FakeOpenAI([Raw(200, b'{"choices": [')]) as server,
        pytest.raises(ModelError, match="not a chat completion"),
    ):
        backend(server.base_url).complete(MSGS)


def test_reply_without_choices_is_a_model_error() -> None:
    with (
        FakeOpenAI([Raw(200, b'{"choices": []}')]) as server,
        pytest.raises(ModelError, match="not a chat completion"),
    ):
        backend(server.base_url).complete(MSGS)


def test_timeout_is_retried_then_reported() -> None:
    with FakeOpenAI([Hang(), Hang()]) as server:
        b = backend(server.base_url, timeout_s=0.3, max_retries=1)
        with pytest.raises(ModelError, match="failed 2 times; last: timed out"):
            b.complete(MSGS)
    assert len(server.requests) == 2


def test_timeout_then_success() -> None:
    with FakeOpenAI([Hang(), "late but fine"]) as server:
        b = backend(server.base_url, timeout_s=0.3, max_retries=2)
        assert b.complete(MSGS).text == "late but fine"


def test_429_then_stream_ok_and_5xx_exhaustion_in_stream() -> None:
    with FakeOpenAI([(429, "slow"), (500, "a"), (502, "b")]) as server:
        b = backend(server.base_url, max_retries=2)
        with pytest.raises(ModelError, match="failed 3 times.*HTTP 502: b"):
            b.stream(MSGS).text()


def test_cancel_during_backoff_stops_retrying() -> None:
    token = CancelToken()

    def first(body: dict[str, object]) -> tuple[int, str]:
        token.cancel()  # the caller gives up while the server is busy
        return (503, "busy")

    with FakeOpenAI([first, "never sent"]) as server:
        b = OpenAICompatibleBackend(server.base_url, "m", backoff_s=30, max_retries=3)
        with pytest.raises(Cancelled):
            b.generate(MSGS, cancel=token)
    assert len(server.requests) == 1


def test_n_seed_and_top_p_reach_the_server() -> None:
    with FakeOpenAI(["x"]) as server:
        b = backend(server.base_url)
        b.generate(MSGS, Sampling(max_tokens=5, temperature=0.7, top_p=0.9, seed=4), n=3)
    body = server.requests[0]
    assert (body["n"], body["seed"], body["top_p"], body["temperature"]) == (3, 4, 0.9, 0.7)
