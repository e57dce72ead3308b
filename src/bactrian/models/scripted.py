"""The ``scripted`` backend: answers replayed from a script file, streamed token by token.

A test double registered at the model seam (like CES's ``none`` sandbox): editor clients'
tests and the sidecar's benchmark get known answers from a real sidecar, with no model. The
model's ``path`` names a JSON or TOML script::

    {
      "token_delay_s": 0.0,          # sleep before each token (optional)
      "first_token_delay_s": 0.0,    # extra sleep before the first one (optional)
      "record": "/tmp/prompts.jsonl",  # append every call's messages here (optional)
      "answers": [
        {"match": "to_string", "text": "--- a/lib/a.ml\\n+++ b/lib/a.ml\\n@@ ..."},
        {"match": "boom", "error": "the scripted model failed"},
        {"text": "an answer for any other prompt"}
      ]
    }

An answer applies when its ``match`` (a substring) occurs in the last user message; an
answer without ``match`` applies to any prompt. With ``"cycle": true`` the answers are
replayed in order regardless of ``match``. The script is re-read when its file changes, so a
test can change answers between requests.
"""

from __future__ import annotations

import json
import re
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bactrian.errors import ConfigError, ModelError
from bactrian.models.base import (
    BackendBase,
    CancelToken,
    Completion,
    Messages,
    ModelBackend,
    ModelConfig,
    Sampling,
    TextStream,
)

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def tokens_of(text: str) -> list[str]:
    """How a scripted answer is cut into streamed tokens (runs of spaces, words, symbols)."""
    return _TOKEN.findall(text)


def load_script(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the scripted model's script {path}: {exc.strerror or exc}. Point "
            "[models.NAME] path at a JSON or TOML file of answers (docs/aid.md)."
        ) from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The scripted model's script {path} does not parse: {exc}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("answers", []), list):
        raise ConfigError(f"The script {path} must be a table with an 'answers' list.")
    for i, ans in enumerate(data.get("answers", [])):
        if not isinstance(ans, dict) or not isinstance(ans.get("text", ans.get("error")), str):
            raise ConfigError(f"Answer {i} of {path} needs a 'text' (or 'error') string.")
    return data


class ScriptedBackend(BackendBase):
    name = "scripted"

    def __init__(self, script: Path, model_id: str = "scripted") -> None:
        self.script = script
        self.model_id = model_id
        self._lock = threading.Lock()
        self._mtime: float = -1.0
        self._data: dict[str, Any] = {}
        self._next = 0
        self.data()  # a bad script fails when the backend is made, not at the first request

    def data(self) -> dict[str, Any]:
        with self._lock:
            try:
                mtime = self.script.stat().st_mtime_ns
            except OSError:
                mtime = -2
            if mtime != self._mtime:
                self._data = load_script(self.script)
                self._mtime = mtime
            return self._data

    def pick(self, messages: Messages) -> dict[str, Any]:
        data = self.data()
        answers = list(data.get("answers", []))
        if not answers:
            return {"text": ""}
        if data.get("cycle"):
            with self._lock:
                ans = answers[self._next % len(answers)]
                self._next += 1
            return dict(ans)
        last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        for ans in answers:
            if "match" not in ans or str(ans["match"]) in last:
                return dict(ans)
        return {"text": ""}

    def _record(self, messages: Messages) -> None:
        target = self.data().get("record")
        if target:
            with self._lock, Path(str(target)).open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")

    def generate(
        self,
        messages: Messages,
        sampling: Sampling | None = None,
        *,
        n: int = 1,
        cancel: CancelToken | None = None,
    ) -> list[Completion]:
        out = []
        for _ in range(n):
            stream = self.stream(messages, sampling, cancel=cancel)
            stream.text()
            assert stream.completion is not None
            out.append(stream.completion)
        return out

    def _stream(
        self, messages: Messages, sampling: Sampling, cancel: CancelToken, result: TextStream
    ) -> Iterator[str]:
        start = time.monotonic()
        self._record(messages)
        ans = self.pick(messages)
        data = self.data()
        if "error" in ans:
            raise ModelError(f"The scripted model failed: {ans['error']}")
        delay = float(ans.get("token_delay_s", data.get("token_delay_s", 0.0)))
        first = float(ans.get("first_token_delay_s", data.get("first_token_delay_s", 0.0)))
        pieces = tokens_of(str(ans["text"]))[: max(1, sampling.max_tokens)]
        ttft: float | None = None
        sent: list[str] = []
        reason = "length" if len(pieces) >= sampling.max_tokens else "stop"
        for i, piece in enumerate(pieces):
            wait = delay + (first if i == 0 else 0.0)
            if (wait and cancel.wait(wait)) or cancel.cancelled:
                reason = "cancelled"
                break
            if ttft is None:
                ttft = time.monotonic() - start
            sent.append(piece)
            yield piece
        text = "".join(sent)
        prompt_tokens = sum(self.count_tokens(m.get("content", "")) for m in messages)
        result.completion = Completion(
            text=text,
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(sent),
                "total_tokens": prompt_tokens + len(sent),
            },
            latency_s=time.monotonic() - start,
            model=self.model_id,
            ttft_s=ttft,
            finish_reason=reason,
        )


def factory(config: ModelConfig) -> ModelBackend:
    if not config.path:
        raise ConfigError(
            f"The scripted model {config.name or '(unnamed)'} needs path = a script file of "
            "answers (JSON or TOML, see docs/aid.md)."
        )
    return ScriptedBackend(
        Path(config.path).expanduser(), config.model or config.name or "scripted"
    )
