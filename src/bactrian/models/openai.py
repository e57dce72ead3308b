"""An OpenAI-compatible chat-completions backend over httpx (vLLM, llama.cpp server, Ollama,
hosted APIs and ``bactrian models serve`` all speak it): ``n`` completions per request,
streaming over server-sent events, cancellation, timeouts and retries with backoff."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx

from bactrian.errors import ModelError
from bactrian.models.base import (
    BackendBase,
    Cancelled,
    CancelToken,
    Completion,
    Messages,
    ModelBackend,
    ModelConfig,
    Sampling,
    TextStream,
)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class _Retry(Exception):
    """A failure worth another attempt (the message says which)."""


class OpenAICompatibleBackend(BackendBase):
    """POSTs to ``{base_url}/chat/completions`` (``base_url`` may or may not end in ``/v1``).

    Retries with exponential backoff on 429/5xx, timeouts and connection errors (a stream is
    retried only before its first delta); any other HTTP error or a reply without a choice
    raises :class:`ModelError` with the server's message. The API key comes from the
    environment variable ``api_key_env``.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        *,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        default_sampling: Sampling | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        self.base = base
        self.url = base + "/chat/completions"
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.default_sampling = default_sampling or Sampling(timeout_s=timeout_s)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    @classmethod
    def from_config(cls, config: ModelConfig) -> OpenAICompatibleBackend:
        return cls(
            config.base_url,
            config.model,
            config.api_key_env,
            config.timeout_s,
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
            default_sampling=config.sampling(),
        )

    def close(self) -> None:
        self._client.close()

    def _body(self, messages: Messages, sampling: Sampling, n: int, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
        }
        if sampling.top_p != 1.0:
            body["top_p"] = sampling.top_p
        if n != 1:
            body["n"] = n
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def complete(
        self,
        messages: Messages,
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Completion:
        # the plain request (no n, seed or top_p unless set): what every server accepts
        sampling = Sampling(
            max_tokens=max_tokens,
            temperature=temperature,
            stop=list(stop or []),
            timeout_s=self.timeout_s,
        )
        return self.generate(messages, sampling)[0]

    def _attempts(self, cancel: CancelToken) -> Iterator[int]:
        for attempt in range(self.max_retries + 1):
            if attempt and cancel.wait(self.backoff_s * 2 ** (attempt - 1)):
                break
            cancel.check()
            yield attempt
        cancel.check()

    def _timeout(self, sampling: Sampling) -> httpx.Timeout:
        return httpx.Timeout(sampling.timeout_s or self.timeout_s)

    def generate(
        self,
        messages: Messages,
        sampling: Sampling | None = None,
        *,
        n: int = 1,
        cancel: CancelToken | None = None,
    ) -> list[Completion]:
        sampling = sampling or self.default_sampling
        cancel = cancel or CancelToken()
        body = self._body(messages, sampling, n, stream=False)
        start = time.monotonic()
        last = ""
        for _ in self._attempts(cancel):
            try:
                resp = self._client.post(self.url, json=body, timeout=self._timeout(sampling))
                self._check(resp)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = _transport_text(exc)
                continue
            except _Retry as exc:
                last = str(exc)
                continue
            return self._parse(resp, time.monotonic() - start)
        raise self._gave_up(last)

    def _gave_up(self, last: str) -> ModelError:
        return ModelError(
            f"Model server {self.url} failed {self.max_retries + 1} times; last: {last}. "
            "Is the server running and reachable? Retry later or raise [models] max_retries."
        )

    def _check(self, resp: httpx.Response) -> None:
        if resp.status_code in RETRY_STATUSES:
            raise _Retry(f"HTTP {resp.status_code}: {_error_text(resp)}")
        if resp.status_code >= 400:
            raise ModelError(
                f"Model server {self.url} answered HTTP {resp.status_code}: "
                f"{_error_text(resp)}. Check the model name ({self.model!r}), the API key "
                "and the request."
            )

    def _parse(self, resp: httpx.Response, latency: float) -> list[Completion]:
        try:
            data = resp.json()
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            texts = [c["message"]["content"] or "" for c in choices]
            reasons = [c.get("finish_reason") or "stop" for c in choices]
            if not texts:
                raise IndexError("no choices")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelError(
                f"Model server {self.url} sent a reply that is not a chat completion "
                f"({exc!r}): {resp.text[:200]!r}."
            ) from None
        usage = {k: int(v) for k, v in (data.get("usage") or {}).items() if isinstance(v, int)}
        per = _split_usage(usage, len(texts))
        model = data.get("model", "") or self.model
        return [
            Completion(text=t, usage=per, latency_s=latency, model=model, finish_reason=r)
            for t, r in zip(texts, reasons, strict=True)
        ]

    def _stream(
        self, messages: Messages, sampling: Sampling, cancel: CancelToken, result: TextStream
    ) -> Iterator[str]:
        body = self._body(messages, sampling, 1, stream=True)
        start = time.monotonic()
        last = ""
        for _ in self._attempts(cancel):
            parts: list[str] = []
            state: dict[str, Any] = {"usage": {}, "reason": "stop", "model": self.model}
            ttft: float | None = None
            try:
                with self._client.stream(
                    "POST", self.url, json=body, timeout=self._timeout(sampling)
                ) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                    self._check(resp)
                    for delta in _sse_deltas(resp, self.url, state):
                        if cancel.cancelled:
                            state["reason"] = "cancelled"
                            break
                        if ttft is None:
                            ttft = time.monotonic() - start
                        parts.append(delta)
                        yield delta
            except _Retry as exc:
                last = str(exc)
                continue
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if not parts:
                    last = f"{_transport_text(exc)}"
                    continue
                raise ModelError(
                    f"The stream from {self.url} broke after {len(parts)} deltas "
                    f"({_transport_text(exc)}). Retry the request."
                ) from None
            result.completion = Completion(
                text="".join(parts),
                usage=state["usage"],
                latency_s=time.monotonic() - start,
                model=state["model"],
                ttft_s=ttft,
                finish_reason=state["reason"],
            )
            return
        raise self._gave_up(last)


def _sse_deltas(resp: httpx.Response, url: str, state: dict[str, Any]) -> Iterator[str]:
    """The content deltas of an OpenAI chat-completions event stream; fills ``state`` with
    usage, finish reason and model. A stream that ends without ``data: [DONE]`` is an error."""
    done = False
    for line in resp.iter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            done = True
            break
        try:
            event = json.loads(payload)
        except ValueError:
            raise ModelError(
                f"Model server {url} sent a stream event that is not JSON: {payload[:120]!r}."
            ) from None
        if not isinstance(event, dict):
            raise ModelError(f"Model server {url} sent a stream event that is not an object.")
        if "error" in event:
            err = event["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            raise ModelError(f"Model server {url} reported an error mid-stream: {msg}")
        if event.get("model"):
            state["model"] = event["model"]
        if isinstance(event.get("usage"), dict):
            state["usage"] = {k: int(v) for k, v in event["usage"].items() if isinstance(v, int)}
        for choice in event.get("choices") or []:
            if choice.get("finish_reason"):
                state["reason"] = choice["finish_reason"]
            content = (choice.get("delta") or {}).get("content")
            if content:
                yield content
    if not done:
        raise ModelError(
            f"The stream from {url} ended before 'data: [DONE]' (cut off). Retry the request."
        )


def _split_usage(usage: dict[str, int], n: int) -> dict[str, int]:
    """Per-choice usage from a whole reply's: the prompt is shared, the completion tokens
    are divided among the ``n`` choices."""
    if n <= 1 or not usage:
        return dict(usage)
    out = dict(usage)
    if "completion_tokens" in usage:
        out["completion_tokens"] = round(usage["completion_tokens"] / n)
        out["total_tokens"] = usage.get("prompt_tokens", 0) + out["completion_tokens"]
    return out


def _transport_text(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({exc})"
    return f"connection failed ({exc})"


def _error_text(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message", err))
        return str(err)
    except ValueError:
        return resp.text[:200]


def factory(config: ModelConfig) -> ModelBackend:
    return OpenAICompatibleBackend.from_config(config)


__all__ = ["Cancelled", "OpenAICompatibleBackend"]
