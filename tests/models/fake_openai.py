"""A real OpenAI-compatible HTTP server on loopback with scripted replies — a test fixture any
part's tests can import::

    from tests.models.fake_openai import FakeOpenAI

    with FakeOpenAI(["first reply", (429, "slow down"), "second reply"]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "tiny")
        ...
        server.requests  # the JSON bodies received, in order

Each script item is either a string (returned as the assistant message) or ``(status, text)``
(an error reply with that status and ``{"error": {"message": text}}``). A callable item is
called with the request body and returns one of those, or a list of texts (one choice each). ``Stream(deltas, cut=, garbage=)``
answers as server-sent events, ``Raw(status, body)`` sends a body as it is (malformed JSON),
``Hang()`` never answers (a client timeout must fire). When the script runs out, the server
answers 500 "script exhausted", so a test that makes one call too many fails loudly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Stream:
    """An SSE reply of these deltas; ``cut`` drops the connection before ``data: [DONE]``;
    ``garbage`` sends a non-JSON event after the deltas."""

    deltas: list[str]
    cut: bool = False
    garbage: bool = False


@dataclass
class Raw:
    """A reply body sent as it is (e.g. malformed JSON) with this status."""

    status: int
    body: bytes


@dataclass
class Hang:
    """Never answer (until the server shuts down): the client's timeout must fire."""


Reply = (
    str
    | tuple[int, str]
    | Stream
    | Raw
    | Hang
    | Callable[[dict[str, Any]], "str | list[str] | tuple[int, str]"]
)


class FakeOpenAI:
    def __init__(self, script: Iterable[Reply] = (), model: str = "fake-model") -> None:
        self.script: list[Reply] = list(script)
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._release = threading.Event()

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
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _pop(self, body: dict[str, Any], headers: dict[str, str]) -> Reply | None:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            return self.script.pop(0) if self.script else None

    def _next(self, item: Reply | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if item is None:
            return 500, {"error": {"message": "script exhausted"}}
        if callable(item):
            item = item(body)
        texts = item if isinstance(item, list) else None
        if texts is not None:  # several choices (a request with n)
            return 200, {
                "object": "chat.completion",
                "model": body.get("model") or self.model,
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": t},
                        "finish_reason": "stop",
                    }
                    for i, t in enumerate(texts)
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5 * len(texts)},
            }
        assert isinstance(item, str | tuple)
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
                item = fake._pop(body, dict(self.headers.items()))
                if isinstance(item, Hang):
                    fake._release.wait()
                    return
                if isinstance(item, Raw):
                    self.send_response(item.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(item.body)))
                    self.end_headers()
                    self.wfile.write(item.body)
                    return
                if isinstance(item, Stream):
                    self._stream(item, body)
                    return
                status, payload = fake._next(item, body)
                self._send(status, payload)

            def _stream(self, item: Stream, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for delta in item.deltas:
                    chunk = {
                        "object": "chat.completion.chunk",
                        "model": body.get("model") or fake.model,
                        "choices": [{"index": 0, "delta": {"content": delta}}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                if item.garbage:
                    self.wfile.write(b"data: {not json\n\n")
                if item.cut:
                    self.close_connection = True
                    return
                end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
                for ev in (end, usage):
                    self.wfile.write(f"data: {json.dumps(ev)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
