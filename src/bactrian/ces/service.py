"""The CES over HTTP: a FastAPI app around any :class:`~bactrian.ces.contract.CESBackend` and
the uvicorn entry point behind ``bactrian ces serve``. Its client, itself a ``CESBackend``, is
:class:`bactrian.ces.client.CESClient`.

Routes (JSON unless noted; all but ``/healthz`` need ``Authorization: Bearer <token>`` when the
service has a token):

- ``POST /v1/batches`` ``{"base": {...BaseSpec}, "diffs": ["..."], "options": {...}}`` →
  ``202 {"id", "status": "queued", "jobs"}``; judged in the background, in submission order.
  ``options``: ``allow_lenient``, ``timeout_s``, ``edits_tests_policy`` (``trust`` only when
  the service was started with ``--allow-trust``: 403 else).
- ``GET /v1/batches/{id}`` → ``{"id", "status", "jobs", "verdicts": [...] | null, "error"}``;
  ``status`` is ``queued``, ``running``, ``done`` or ``error`` (e.g. a base that is not green).
- ``POST /v1/evaluate`` (same body) → ``{"verdicts": [...]}`` once judged (synchronous).
- ``POST /v1/warm`` ``{"base": {...}, "workers": N}`` → the backend's ``warm()`` info.
- ``GET /v1/status`` → the backend's ``status()`` and the service's queued jobs.
- ``GET /healthz`` → ``{"ok": true, "backend": ..., "version": ...}`` (no token needed).
- ``GET /metrics`` → Prometheus text (see :mod:`bactrian.ces.metrics`).
- ``POST /openrlhf/reward`` (only with ``--openrlhf-dataset DIR``): OpenRLHF's remote reward
  endpoint over that dataset's examples (see :mod:`bactrian.ces.openrlhf`).

Errors: 401 without the token, 403 for a base outside ``allowed_roots`` or a refused policy,
404 for an unknown batch, 413 for a body over ``max_body_bytes``, 422 for a malformed request
or (``/v1/evaluate``, ``/v1/warm``) a base that is not green, 503 when the queued batches
already hold ``max_pending_bytes`` of diffs.

Batches run one at a time on a dispatcher thread; the backend spreads each batch's jobs over
its workers. Finished batches are kept so clients can poll, within bounds (:class:`Retention`):
at most ``keep`` batches, ``keep_bytes`` of verdicts, ``keep_s`` seconds after they finished;
the oldest go first, and a finished batch no longer holds its diffs.

The service judges bases named by *path or URL on the server's machine*: whoever can reach it
can make it copy and build any directory it can read. It binds to 127.0.0.1 by default; set a
token (``--token-env``) and ``--allow-root`` before binding anything wider.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from bactrian.ces import openrlhf
from bactrian.ces.backends import make_backend
from bactrian.ces.client import token_from_env
from bactrian.ces.config import EDITS_TESTS_POLICIES, CESConfig
from bactrian.ces.contract import BaseSpec, CESBackend, Job, Verdict
from bactrian.ces.metrics import CONTENT_TYPE, CESMetrics
from bactrian.ces.rlreward import ExampleJudge
from bactrian.errors import BactrianError, BaseNotGreenError, CESError

log = logging.getLogger(__name__)

API_VERSION = "v1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


# ---------------------------------------------------------------------------- request models


class BaseIn(BaseModel):
    source: str = Field(description="A directory or a git/Mercurial repository on the server.")
    rev: str | None = None
    vcs: str | None = None
    stages: dict[str, str] = Field(default_factory=dict)
    adapter: str = "auto"

    def spec(self) -> BaseSpec:
        return BaseSpec(
            source=self.source,
            rev=self.rev,
            vcs=self.vcs,
            stages=dict(self.stages),
            adapter=self.adapter,
        )


class OptionsIn(BaseModel):
    allow_lenient: bool = False
    timeout_s: float | None = Field(default=None, gt=0)
    edits_tests_policy: str | None = Field(
        default=None, description="One of " + ", ".join(EDITS_TESTS_POLICIES) + "."
    )


class BatchIn(BaseModel):
    base: BaseIn
    diffs: list[str] = Field(min_length=1, max_length=10_000)
    options: OptionsIn = Field(default_factory=OptionsIn)

    def jobs(self) -> list[Job]:
        base = self.base.spec()
        return [
            Job(
                base=base,
                diff=d,
                allow_lenient=self.options.allow_lenient,
                timeout_s=self.options.timeout_s,
                edits_tests_policy=self.options.edits_tests_policy,
            )
            for d in self.diffs
        ]


class WarmIn(BaseModel):
    base: BaseIn
    workers: int | None = Field(default=None, gt=0)


# ---------------------------------------------------------------------------- batch queue


@dataclass(frozen=True)
class Retention:
    """What the service keeps of finished batches (the oldest dropped first), and how much
    queued work it accepts."""

    keep: int = 1000  # finished batches
    keep_bytes: int = 64 * 1024 * 1024  # their verdicts, as JSON
    keep_s: float = 3600.0  # seconds after a batch finished
    max_pending_bytes: int = 256 * 1024 * 1024  # diffs of batches not yet judged


@dataclass
class Batch:
    id: str
    jobs: list[Job]
    status: str = "queued"  # queued | running | done | error
    created: float = field(default_factory=time.time)
    finished: float | None = None
    verdicts: list[Verdict] | None = None
    error: str | None = None
    future: Future[list[Verdict]] = field(default_factory=Future)
    n_jobs: int = 0
    size: int = 0  # bytes held: the diffs until judged, then the verdicts as JSON
    finished_at: float | None = None  # time.monotonic() when finished

    def __post_init__(self) -> None:
        self.n_jobs = len(self.jobs)
        self.size = sum(len(j.diff) for j in self.jobs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "jobs": self.n_jobs,
            "created": self.created,
            "finished": self.finished,
            "verdicts": [v.to_dict() for v in self.verdicts] if self.verdicts is not None else None,
            "error": self.error,
        }


class BusyError(CESError):
    """The queued batches already hold as many diff bytes as the service accepts."""


class BatchRunner:
    """Runs batches on one background thread, in submission order, and remembers results
    within ``retention``'s bounds."""

    def __init__(
        self,
        backend: CESBackend,
        metrics: CESMetrics,
        keep: int = 1000,
        retention: Retention | None = None,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.retention = retention or Retention(keep=keep)
        self.keep = self.retention.keep
        self._batches: OrderedDict[str, Batch] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Batch | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="ces-batches", daemon=True)
        self._thread.start()

    def submit(self, jobs: list[Job]) -> Batch:
        batch = Batch(id=uuid.uuid4().hex, jobs=jobs)
        with self._lock:
            self._prune()
            pending = sum(b.size for b in self._batches.values() if b.finished_at is None)
            if pending and pending + batch.size > self.retention.max_pending_bytes:
                raise BusyError(
                    f"The CES service is busy: {pending / 1e6:.1f} MB of diffs are queued "
                    f"(at most {self.retention.max_pending_bytes / 1e6:.0f} MB). Retry once "
                    "some batches are judged."
                )
            self._batches[batch.id] = batch
        self._queue.put(batch)
        return batch

    def _prune(self) -> None:
        """Drop finished batches, oldest first, beyond the count, byte and age bounds (the
        newest finished batch stays, whatever its size, so that its client can fetch it)."""
        r = self.retention
        now = time.monotonic()
        done = [b for b in self._batches.values() if b.finished_at is not None]
        n, kept_bytes = len(done), sum(b.size for b in done)
        for b in done[:-1]:  # in submission (= finishing) order: oldest first
            assert b.finished_at is not None
            if n <= r.keep and kept_bytes <= r.keep_bytes and now - b.finished_at <= r.keep_s:
                continue
            del self._batches[b.id]
            n -= 1
            kept_bytes -= b.size
        if done and now - (done[-1].finished_at or now) > r.keep_s:
            del self._batches[done[-1].id]

    def kept(self) -> dict[str, int]:
        """Finished batches kept and their bytes (for status and tests)."""
        with self._lock:
            self._prune()
            done = [b for b in self._batches.values() if b.finished_at is not None]
            return {"batches": len(done), "bytes": sum(b.size for b in done)}

    def get(self, batch_id: str) -> Batch | None:
        with self._lock:
            self._prune()
            return self._batches.get(batch_id)

    def pending_jobs(self) -> int:
        with self._lock:
            return sum(b.n_jobs for b in self._batches.values() if b.status == "queued")

    def _finish(self, batch: Batch) -> None:
        """A judged batch lets go of its diffs; it now holds its verdicts."""
        size = len(json.dumps([v.to_dict() for v in batch.verdicts or []]))
        with self._lock:
            batch.jobs = []
            batch.size = size + len(batch.error or "")
            batch.finished_at = time.monotonic()
            self._prune()

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            self._run(batch)

    def _run(self, batch: Batch) -> None:
        batch.status = "running"
        try:
            verdicts = self.backend.evaluate(batch.jobs)
        except Exception as exc:  # reported to the client; the service keeps serving
            if not isinstance(exc, BactrianError):
                log.exception("CES batch %s failed", batch.id)
            batch.error = f"{type(exc).__name__}: {exc}"
            batch.status = "error"
            batch.finished = time.time()
            self._finish(batch)
            self.metrics.batch_finished("error")
            batch.future.set_exception(exc)
            return
        self.metrics.observe(verdicts)
        batch.verdicts = list(verdicts)
        batch.status = "done"
        batch.finished = time.time()
        self._finish(batch)
        self.metrics.batch_finished("done")
        batch.future.set_result(batch.verdicts)


# ---------------------------------------------------------------------------- the app


def _auth(token: str | None) -> Any:
    expected = f"Bearer {token}".encode() if token else None

    def check(request: Request) -> None:
        if expected is None:
            return
        got = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(got, expected):
            raise HTTPException(
                status_code=401,
                detail="Missing or wrong bearer token: send 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def _source_checker(roots: Sequence[str | os.PathLike[str]] | None) -> Callable[[str], None]:
    resolved = [Path(r).expanduser().resolve() for r in roots] if roots else None

    def check(source: str) -> None:
        if resolved is None:
            return
        path = Path(source).expanduser().resolve() if "://" not in source else None
        if path is None or not any(path == r or r in path.parents for r in resolved):
            raise HTTPException(
                status_code=403,
                detail=f"Base {source!r} is outside the directories this service may build ("
                + ", ".join(str(r) for r in resolved)
                + "). Ask its operator to add it with --allow-root.",
            )

    return check


class _BodyTooLarge(HTTPException):
    pass


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413, whether it says its length
    up front (refused before reading) or streams it (refused once it passes the bound)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self, size: int | None) -> str:
        got = f" ({size} bytes)" if size is not None else ""
        return (
            f"Request body too large{got}: this CES service accepts at most {self.max_bytes} "
            "bytes per request. Split the batch into smaller ones (or ask its operator to "
            "raise --max-body-mb)."
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send, int(length))
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge(status_code=413, detail=self._message(None))
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, send: Any, size: int) -> None:
        body = json.dumps({"detail": self._message(size)}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(
    backend: CESBackend,
    *,
    token: str | None = None,
    keep_batches: int = 1000,
    status_timeout_s: float = 2.0,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    retention: Retention | None = None,
    allow_trust: bool = False,
    openrlhf_judge: ExampleJudge | None = None,
) -> FastAPI:
    """A FastAPI app serving ``backend`` (and OpenRLHF's reward route over
    ``openrlhf_judge``'s dataset when given). The caller owns the backend (and closes it).

    ``status_timeout_s`` bounds how long a metrics scrape waits for ``backend.status()``.
    ``allowed_roots``: when given, a base must be a directory under one of them (403 else).
    ``max_body_bytes`` caps each request body (413); ``retention`` bounds what is kept of
    finished batches (default: ``keep_batches`` batches, 64 MB, one hour). ``allow_trust``
    lets requests ask for the ``trust`` test-edit policy (the diff's tests run as written:
    for human-written diffs only), refused with 403 otherwise."""
    check_source = _source_checker(allowed_roots)
    retention = retention or Retention(keep=keep_batches)
    pending: list[BatchRunner] = []
    metrics = CESMetrics(
        status=backend.status,
        pending=lambda: pending[0].pending_jobs() if pending else 0,
        status_timeout_s=status_timeout_s,
    )
    the_runner = BatchRunner(backend, metrics, retention=retention)
    pending.append(the_runner)

    def runner() -> BatchRunner:
        return the_runner

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        the_runner.close()

    app = FastAPI(
        title="bactrian Code Evaluation Service",
        version=API_VERSION,
        description="Judges diffs against pre-warmed builds, stage by stage, sandboxed.",
        lifespan=lifespan,
    )
    app.state.backend = backend
    app.state.metrics = metrics
    app.state.runner = the_runner
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    auth = Depends(_auth(token))

    def check_policy(options: OptionsIn) -> None:
        policy = options.edits_tests_policy
        if policy is None:
            return
        if policy not in EDITS_TESTS_POLICIES:
            raise HTTPException(
                status_code=422,
                detail=f"options.edits_tests_policy {policy!r} is not a policy: use one of "
                + ", ".join(EDITS_TESTS_POLICIES)
                + ".",
            )
        if policy == "trust" and not allow_trust:
            raise HTTPException(
                status_code=403,
                detail="options.edits_tests_policy 'trust' runs the diff's own tests as "
                "written, for human-written diffs only; this service refuses it. Its operator "
                "can allow it with `bactrian ces serve --allow-trust`.",
            )

    @app.exception_handler(BactrianError)
    async def bactrian_error(_: Request, exc: BactrianError) -> JSONResponse:
        code = 422 if isinstance(exc, BaseNotGreenError) else 400
        if isinstance(exc, BusyError):
            code = 503
        return JSONResponse(status_code=code, content={"detail": str(exc)})

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "backend": backend.name, "version": API_VERSION}

    @app.get("/metrics", dependencies=[auth])
    async def metrics_route() -> Response:
        body = await asyncio.to_thread(metrics.render)
        return Response(content=body, media_type=CONTENT_TYPE)

    @app.get("/v1/status", dependencies=[auth])
    async def status_route() -> dict[str, Any]:
        st = await asyncio.to_thread(backend.status)
        return {
            "backend": backend.name,
            "queued_jobs": runner().pending_jobs(),
            "kept": runner().kept(),
            "status": st,
        }

    @app.post("/v1/warm", dependencies=[auth])
    async def warm(body: WarmIn) -> dict[str, Any]:
        check_source(body.base.source)
        return dict(await asyncio.to_thread(backend.warm, body.base.spec(), body.workers))

    @app.post("/v1/batches", status_code=202, dependencies=[auth])
    async def submit(body: BatchIn) -> dict[str, Any]:
        check_source(body.base.source)
        check_policy(body.options)
        batch = runner().submit(body.jobs())
        return {
            "id": batch.id,
            "status": batch.status,
            "jobs": len(batch.jobs),
            "url": f"/v1/batches/{batch.id}",
        }

    @app.get("/v1/batches/{batch_id}", dependencies=[auth])
    async def get_batch(batch_id: str) -> dict[str, Any]:
        batch = runner().get(batch_id)
        if batch is None:
            raise HTTPException(
                status_code=404,
                detail=f"No batch {batch_id!r}: it never existed, or it was dropped (this "
                f"service keeps at most {retention.keep} finished batches, "
                f"{retention.keep_bytes // (1024 * 1024)} MB of verdicts, for "
                f"{retention.keep_s:g} s). Submit it again.",
            )
        return batch.to_dict()

    @app.post("/v1/evaluate", dependencies=[auth])
    async def evaluate(body: BatchIn) -> dict[str, Any]:
        check_source(body.base.source)
        check_policy(body.options)
        batch = runner().submit(body.jobs())
        try:
            verdicts = await asyncio.wrap_future(batch.future)
        except BactrianError:
            raise
        except Exception as exc:
            raise HTTPException(status_code=500, detail=batch.error or str(exc)) from exc
        return {"id": batch.id, "verdicts": [v.to_dict() for v in verdicts]}

    if openrlhf_judge is not None:
        openrlhf.mount(app, openrlhf_judge, auth)
    return app


# ---------------------------------------------------------------------------- serving


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    backend: str = "local",
    address: str | None = None,
    workers: int | None = None,
    token: str | None = None,
    config: CESConfig | None = None,
    log_level: str = "info",
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    retention: Retention | None = None,
    allow_trust: bool = False,
    openrlhf_dataset: str | os.PathLike[str] | None = None,
    openrlhf_strategy: str = "unified-diff",
) -> None:
    """Run the service with uvicorn until interrupted, then close the backend.
    ``openrlhf_dataset``: also serve OpenRLHF's reward route over that dataset."""
    import uvicorn

    config = config or CESConfig.load(workers=workers)
    impl = make_backend(backend, config, address=address)
    try:
        judge = None
        if openrlhf_dataset:
            judge = ExampleJudge(
                Path(openrlhf_dataset),
                strategy=openrlhf_strategy,
                split=None,
                backend=impl,
                config=config,
                workers=workers,
            )
        app = create_app(
            impl,
            token=token,
            allowed_roots=allowed_roots or None,
            max_body_bytes=max_body_bytes,
            retention=retention,
            allow_trust=allow_trust,
            openrlhf_judge=judge,
        )
        if host not in ("127.0.0.1", "localhost", "::1") and not token:
            log.warning(
                "CES service on %s without a token: anyone who can reach it can make it build "
                "any directory this user can read. Set --token-env.",
                host,
            )
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        impl.close()


__all__ = [
    "BatchRunner",
    "BodyLimit",
    "Retention",
    "create_app",
    "make_backend",
    "serve",
    "token_from_env",
]
