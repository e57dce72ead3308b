"""``bactrian models serve``: an OpenAI-compatible HTTP server over any local backend, so the
describer, evaluation and the AID sidecar can share one loaded model.

Routes: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions`` (``n``, ``stop``,
``seed``, ``stream: true`` as server-sent events ending in ``data: [DONE]``),
``POST /v1/completions`` (a raw prompt), ``GET /metrics`` (Prometheus text).

    with ModelServer(backend, "smollm2") as server:      # loopback, a free port
        OpenAICompatibleBackend(server.base_url, "smollm2").complete(messages)
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

from bactrian.models.base import CancelToken, Completion, Messages, ModelBackend, Sampling


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _first(body: dict[str, Any], a: str, b: str, default: Any) -> Any:
    for key in (a, b):
        if body.get(key) is not None:
            return body[key]
    return default


def _sampling(body: dict[str, Any], default: Sampling) -> Sampling:
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError(400, "'stop' must be a string or a list of strings")
    try:
        return Sampling(
            max_tokens=int(_first(body, "max_tokens", "max_completion_tokens", default.max_tokens)),
            temperature=float(body.get("temperature", default.temperature) or 0.0),
            top_p=float(body.get("top_p", 1.0) or 1.0),
            stop=stop,
            seed=int(body["seed"]) if body.get("seed") is not None else default.seed,
            timeout_s=default.timeout_s,
        )
    except (TypeError, ValueError) as exc:
        raise RequestError(400, f"bad sampling settings: {exc}") from None
    except Exception as exc:  # ConfigError from Sampling's checks
        raise RequestError(400, str(exc)) from None


def create_app(backend: ModelBackend, model_name: str) -> FastAPI:
    """The FastAPI application serving ``backend`` as model ``model_name``."""
    registry = CollectorRegistry()
    requests = Counter(
        "bactrian_model_requests",
        "Requests by route and status",
        ["route", "status"],
        registry=registry,
    )
    tokens = Counter("bactrian_model_tokens", "Tokens by kind", ["kind"], registry=registry)
    latency = Histogram("bactrian_model_latency_seconds", "Request latency", registry=registry)
    ttft = Histogram(
        "bactrian_model_ttft_seconds", "Time to first streamed token", registry=registry
    )
    default = getattr(backend, "default_sampling", None) or Sampling()

    app = FastAPI(title="bactrian model server", docs_url=None, redoc_url=None)

    def error(status: int, message: str, route: str) -> JSONResponse:
        requests.labels(route, str(status)).inc()
        return JSONResponse(
            {"error": {"message": message, "type": "invalid_request_error", "code": status}},
            status_code=status,
        )

    async def read_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise RequestError(400, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestError(400, "the request body must be a JSON object")
        name = body.get("model")
        if name and name != model_name:
            raise RequestError(
                404, f"model {name!r} is not served here; this server serves {model_name!r}"
            )
        return body

    def account(c: Completion, route: str) -> None:
        tokens.labels("prompt").inc(c.tokens_in)
        tokens.labels("completion").inc(c.tokens_out)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "backend": backend.name}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "bactrian"}],
        }

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            generate_latest(registry).decode(), media_type="text/plain; version=0.0.4"
        )

    def usage_of(replies: list[Completion]) -> dict[str, int]:
        prompt = replies[0].tokens_in if replies else 0
        completion = sum(r.tokens_out for r in replies)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def run_generate(prompt: Messages | str, sampling: Sampling, n: int) -> list[Completion]:
        start = time.monotonic()
        if isinstance(prompt, str):
            gen_text = getattr(backend, "generate_text", None)
            if gen_text is not None:
                replies: list[Completion] = gen_text(prompt, sampling, n=n)
            else:
                replies = backend.generate([{"role": "user", "content": prompt}], sampling, n=n)
        else:
            replies = backend.generate(prompt, sampling, n=n)
        latency.observe(time.monotonic() - start)
        for r in replies:
            account(r, "")
        return replies

    def parse_n(body: dict[str, Any]) -> int:
        try:
            n = int(body.get("n") or 1)
        except (TypeError, ValueError):
            raise RequestError(400, "'n' must be an integer") from None
        if not 1 <= n <= 64:
            raise RequestError(400, "'n' must lie between 1 and 64")
        return n

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        route = "chat"
        try:
            body = await read_body(request)
            messages = body.get("messages")
            if (
                not isinstance(messages, list)
                or not messages
                or not all(
                    isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
                )
            ):
                raise RequestError(400, "'messages' must be a non-empty list of {role, content}")
            sampling = _sampling(body, default)
            n = parse_n(body)
        except RequestError as exc:
            return error(exc.status, exc.message, route)
        rid = f"chatcmpl-{uuid.uuid4().hex[:16]}"
        created = int(time.time())
        if body.get("stream"):
            if n != 1:
                return error(400, "streaming supports n = 1 only", route)
            requests.labels(route, "200").inc()
            return StreamingResponse(
                _sse(backend, messages, sampling, rid, created, model_name, ttft, latency, account),
                media_type="text/event-stream",
            )
        try:
            replies = await run_in_threadpool(run_generate, messages, sampling, n)
        except Exception as exc:
            return error(500, f"generation failed: {exc}", route)
        requests.labels(route, "200").inc()
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": model_name,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": r.text},
                    "finish_reason": r.finish_reason,
                }
                for i, r in enumerate(replies)
            ],
            "usage": usage_of(replies),
        }

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> Any:
        route = "completions"
        try:
            body = await read_body(request)
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt:
                raise RequestError(400, "'prompt' must be a non-empty string")
            sampling = _sampling(body, default)
            n = parse_n(body)
            if body.get("stream"):
                raise RequestError(400, "streaming is served on /v1/chat/completions only")
        except RequestError as exc:
            return error(exc.status, exc.message, route)
        try:
            replies = await run_in_threadpool(run_generate, prompt, sampling, n)
        except Exception as exc:
            return error(500, f"generation failed: {exc}", route)
        requests.labels(route, "200").inc()
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:16]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [
                {"index": i, "text": r.text, "finish_reason": r.finish_reason}
                for i, r in enumerate(replies)
            ],
            "usage": usage_of(replies),
        }

    return app


def _sse(
    backend: ModelBackend,
    messages: Messages,
    sampling: Sampling,
    rid: str,
    created: int,
    model_name: str,
    ttft: Any,
    latency: Any,
    account: Any,
) -> Iterator[str]:
    cancel = CancelToken()

    def event(delta: dict[str, Any], reason: str | None = None, usage: Any = None) -> str:
        chunk: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
        }
        if usage is not None:
            chunk = {**chunk, "choices": [], "usage": usage}
        return f"data: {json.dumps(chunk)}\n\n"

    stream = backend.stream(messages, sampling, cancel=cancel)
    try:
        yield event({"role": "assistant", "content": ""})
        for delta in stream:
            yield event({"content": delta})
        c = stream.completion
        if c is not None:
            if c.ttft_s is not None:
                ttft.observe(c.ttft_s)
            latency.observe(c.latency_s)
            account(c, "chat")
        yield event({}, reason=c.finish_reason if c else "stop")
        if c is not None:
            yield event({}, usage={**c.usage})
        yield "data: [DONE]\n\n"
    except Exception as exc:
        yield f"data: {json.dumps({'error': {'message': f'generation failed: {exc}'}})}\n\n"
    finally:
        cancel.cancel()  # the client went away: stop generating


class ModelServer:
    """Serve ``backend`` on ``host:port`` (port 0: a free one) in a background thread.

    The listening socket is bound before the thread starts, so clients may connect at once."""

    def __init__(
        self, backend: ModelBackend, model_name: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        import uvicorn

        self.app = create_app(backend, model_name)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(128)
        self.host, self.port = self._sock.getsockname()[:2]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="bactrian-model-server",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()


def serve(
    backend: ModelBackend, model_name: str, host: str = "127.0.0.1", port: int = 8000
) -> None:
    """Serve in the foreground until interrupted (``bactrian models serve``)."""
    import uvicorn

    uvicorn.run(create_app(backend, model_name), host=host, port=port, log_level="info")
