"""An OpenAI-compatible chat-completions backend over httpx (vLLM, llama.cpp server, Ollama,
hosted APIs all speak it)."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx

from bactrian.errors import ModelError
from bactrian.models.base import MODEL_BACKENDS, Completion, ModelConfig

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAICompatibleBackend:
    """POSTs to ``{base_url}/chat/completions`` (``base_url`` may or may not end in ``/v1``).

    Retries with exponential backoff on 429/5xx and on connection errors; any other HTTP error
    or a reply without a choice raises :class:`ModelError` with the server's message.
    ``transport`` lets a caller pass an httpx transport (tests use a real server instead).
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
    ) -> None:
        base = base_url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        self.url = base + "/chat/completions"
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
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
        )

    def close(self) -> None:
        self._client.close()

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Completion:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if stop:
            body["stop"] = stop
        start = time.monotonic()
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self._client.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                last = f"timed out ({exc})"
                continue
            except httpx.TransportError as exc:
                last = f"connection failed ({exc})"
                continue
            if resp.status_code in RETRY_STATUSES:
                last = f"HTTP {resp.status_code}: {_error_text(resp)}"
                continue
            if resp.status_code >= 400:
                raise ModelError(
                    f"Model server {self.url} answered HTTP {resp.status_code}: "
                    f"{_error_text(resp)}. Check the model name ({self.model!r}), the API key "
                    "and the request."
                )
            return self._parse(resp, time.monotonic() - start)
        raise ModelError(
            f"Model server {self.url} failed {self.max_retries + 1} times; last: {last}. "
            "Is the server running and reachable? Retry later or raise [models] max_retries."
        )

    def _parse(self, resp: httpx.Response, latency: float) -> Completion:
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(
                f"Model server {self.url} sent a reply that is not a chat completion "
                f"({exc!r}): {resp.text[:200]!r}."
            ) from None
        usage = {k: int(v) for k, v in (data.get("usage") or {}).items() if isinstance(v, int)}
        return Completion(text=text, usage=usage, latency_s=latency, model=data.get("model", ""))


def _error_text(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message", err))
        return str(err)
    except ValueError:
        return resp.text[:200]


MODEL_BACKENDS.add("openai", OpenAICompatibleBackend.from_config)
