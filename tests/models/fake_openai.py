"""A real OpenAI-compatible HTTP server on loopback with scripted replies — a test fixture any
part's tests can import::

    from tests.models.fake_openai import FakeOpenAI

    with FakeOpenAI(["first reply", (429, "slow down"), "second reply"]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "tiny")
        ...
        server.requests  # the JSON bodies received, in order

Each script item is either a string (returned as the assistant message) or ``(status, text)``
(an error reply with that status and ``{"error": {"message": text}}``). A callable item is
called with the request body and returns one of those. When the script runs out, the server
answers 500 "script exhausted", so a test that makes one call too many fails loudly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | tuple[int, str] | Callable[[dict[str, Any]], "str | tuple[int, str]"]


class FakeOpenAI:
    def __init__(self, script: Iterable[Reply] = (), model: str = "fake-model") -> None:
        self.script: list[Reply] = list(script)
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            item: Reply | None = self.script.pop(0) if self.script else None
        if item is None:
            return 500, {"error": {"message": "script exhausted"}}
        if callable(item):
            item = item(body)
        if isinstance(item, tuple):
            status, text = item
            return status, {"error": {"message": text, "type": "scripted"}}
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": item},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(item.split()),
                "total_tokens": prompt_tokens + len(item.split()),
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "body is not JSON"}})
                    return
                if not isinstance(body.get("messages"), list):
                    self._send(400, {"error": {"message": "'messages' is required"}})
                    return
                status, payload = fake._next(body, dict(self.headers.items()))
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
