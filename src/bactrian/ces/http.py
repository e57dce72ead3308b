"""The CES over HTTP: a FastAPI app around any :class:`~bactrian.ces.contract.CESBackend`, the
uvicorn entry point behind ``bactrian ces serve``, and :class:`CESClient`, its httpx client.

Routes (JSON unless noted; all but ``/healthz`` need ``Authorization: Bearer <token>`` when the
service has a token):

- ``POST /v1/batches`` ``{"base": {...BaseSpec}, "diffs": ["..."], "options": {...}}`` →
  ``202 {"id", "status": "queued", "jobs"}``; judged in the background, in submission order.
- ``GET /v1/batches/{id}`` → ``{"id", "status", "jobs", "verdicts": [...] | null, "error"}``;
  ``status`` is ``queued``, ``running``, ``done`` or ``error`` (e.g. a base that is not green).
- ``POST /v1/evaluate`` (same body) → ``{"verdicts": [...]}`` once judged (synchronous).
- ``GET /v1/status`` → the backend's ``status()`` and the service's queued jobs.
- ``GET /healthz`` → ``{"ok": true, "backend": ..., "version": ...}`` (no token needed).
- ``GET /metrics`` → Prometheus text (see :mod:`bactrian.ces.metrics`).

Errors: 401 without the token, 403 for a base outside ``allowed_roots``, 404 for an unknown
batch, 422 for a malformed request or (``/v1/evaluate``) a base that is not green.

Batches run one at a time on a dispatcher thread; the backend spreads each batch's jobs over
its workers. Finished batches are kept (bounded, oldest dropped first) so clients can poll.

The service judges bases named by *path or URL on the server's machine*: whoever can reach it
can make it copy and build any directory it can read. It binds to 127.0.0.1 by default; set a
token (``--token-env``) and ``--allow-root`` before binding anything wider.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
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

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from bactrian.ces.backends import make_backend
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, CESBackend, Job, Verdict
from bactrian.ces.metrics import CONTENT_TYPE, CESMetrics
from bactrian.errors import BactrianError, BaseNotGreenError, CESError

log = logging.getLogger(__name__)

API_VERSION = "v1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


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
            )
            for d in self.diffs
        ]


# ---------------------------------------------------------------------------- batch queue


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "jobs": len(self.jobs),
            "created": self.created,
            "finished": self.finished,
            "verdicts": [v.to_dict() for v in self.verdicts] if self.verdicts is not None else None,
            "error": self.error,
        }


class BatchRunner:
    """Runs batches on one background thread, in submission order, and remembers results."""

    def __init__(self, backend: CESBackend, metrics: CESMetrics, keep: int = 1000) -> None:
        self.backend = backend
        self.metrics = metrics
        self.keep = keep
        self._batches: OrderedDict[str, Batch] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Batch | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="ces-batches", daemon=True)
        self._thread.start()

    def submit(self, jobs: list[Job]) -> Batch:
        batch = Batch(id=uuid.uuid4().hex, jobs=jobs)
        with self._lock:
            self._batches[batch.id] = batch
            while len(self._batches) > self.keep:
                oldest = next(iter(self._batches.values()))
                if oldest.status in ("queued", "running"):
                    break
                self._batches.popitem(last=False)
        self._queue.put(batch)
        return batch

    def get(self, batch_id: str) -> Batch | None:
        with self._lock:
            return self._batches.get(batch_id)

    def pending_jobs(self) -> int:
        with self._lock:
            return sum(len(b.jobs) for b in self._batches.values() if b.status == "queued")

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
            self.metrics.batch_finished("error")
            batch.future.set_exception(exc)
            return
        self.metrics.observe(verdicts)
        batch.verdicts = list(verdicts)
        batch.status = "done"
        batch.finished = time.time()
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


def create_app(
    backend: CESBackend,
    *,
    token: str | None = None,
    keep_batches: int = 1000,
    status_timeout_s: float = 2.0,
    allowed_roots: Sequence[str | os.PathLike[str]] | None = None,
) -> FastAPI:
    """A FastAPI app serving ``backend``. The caller owns the backend (and closes it).

    ``status_timeout_s`` bounds how long a metrics scrape waits for ``backend.status()``.
    ``allowed_roots``: when given, a base must be a directory under one of them (403 else)."""
    check_source = _source_checker(allowed_roots)
    pending: list[BatchRunner] = []
    metrics = CESMetrics(
        status=backend.status,
        pending=lambda: pending[0].pending_jobs() if pending else 0,
        status_timeout_s=status_timeout_s,
    )
    the_runner = BatchRunner(backend, metrics, keep=keep_batches)
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
    auth = Depends(_auth(token))

    @app.exception_handler(BactrianError)
    async def bactrian_error(_: Request, exc: BactrianError) -> JSONResponse:
        code = 422 if isinstance(exc, BaseNotGreenError) else 400
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
        return {"backend": backend.name, "queued_jobs": runner().pending_jobs(), "status": st}

    @app.post("/v1/batches", status_code=202, dependencies=[auth])
    async def submit(body: BatchIn) -> dict[str, Any]:
        check_source(body.base.source)
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
                detail=f"No batch {batch_id!r}: it never existed, or it was dropped from the "
                f"{keep_batches} kept batches. Submit it again.",
            )
        return batch.to_dict()

    @app.post("/v1/evaluate", dependencies=[auth])
    async def evaluate(body: BatchIn) -> dict[str, Any]:
        check_source(body.base.source)
        batch = runner().submit(body.jobs())
        try:
            verdicts = await asyncio.wrap_future(batch.future)
        except BactrianError:
            raise
        except Exception as exc:
            raise HTTPException(status_code=500, detail=batch.error or str(exc)) from exc
        return {"id": batch.id, "verdicts": [v.to_dict() for v in verdicts]}

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
) -> None:
    """Run the service with uvicorn until interrupted, then close the backend."""
    import uvicorn

    config = config or CESConfig.load(workers=workers)
    impl = make_backend(backend, config, address=address)
    try:
        app = create_app(impl, token=token, allowed_roots=allowed_roots or None)
        if host not in ("127.0.0.1", "localhost", "::1") and not token:
            log.warning(
                "CES service on %s without a token: anyone who can reach it can make it build "
                "any directory this user can read. Set --token-env.",
                host,
            )
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        impl.close()


# ---------------------------------------------------------------------------- client


class CESClient:
    """A small client of the CES HTTP service::

    with CESClient("http://127.0.0.1:8765", token=...) as ces:
        verdicts = ces.evaluate(BaseSpec("/path/to/repo"), [diff1, diff2])
    """

    def __init__(
        self,
        url: str = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}",
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> CESClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise CESError(
                f"Cannot reach the CES service at {self.url}: {exc}. Is `bactrian ces serve` "
                "running there?"
            ) from exc
        if resp.status_code == 401:
            raise CESError(
                f"The CES service at {self.url} refused the request (401): pass its token."
            )
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            cls = BaseNotGreenError if resp.status_code == 422 and isinstance(detail, str) else None
            raise (cls or CESError)(f"CES service error {resp.status_code}: {detail}")
        return resp

    @staticmethod
    def _body(
        base: BaseSpec | str, diffs: Sequence[str], allow_lenient: bool, timeout_s: float | None
    ) -> dict[str, Any]:
        spec = BaseSpec.coerce(base)
        return {
            "base": {
                "source": spec.source,
                "rev": spec.rev,
                "vcs": spec.vcs,
                "stages": dict(spec.stages),
                "adapter": spec.adapter,
            },
            "diffs": list(diffs),
            "options": {"allow_lenient": allow_lenient, "timeout_s": timeout_s},
        }

    def health(self) -> dict[str, Any]:
        return dict(self._request("GET", "/healthz").json())

    def metrics(self) -> str:
        return self._request("GET", "/metrics").text

    def submit(
        self,
        base: BaseSpec | str,
        diffs: Sequence[str],
        *,
        allow_lenient: bool = False,
        timeout_s: float | None = None,
    ) -> str:
        """Submit a batch; returns its id."""
        body = self._body(base, diffs, allow_lenient, timeout_s)
        return str(self._request("POST", "/v1/batches", json=body).json()["id"])

    def batch(self, batch_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/batches/{batch_id}").json())

    def wait(
        self, batch_id: str, *, poll_s: float = 0.2, timeout_s: float | None = None
    ) -> list[Verdict]:
        """Poll until the batch is judged; its verdicts in diff order."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            info = self.batch(batch_id)
            if info["status"] == "done":
                return [Verdict.from_dict(v) for v in info["verdicts"]]
            if info["status"] == "error":
                err = str(info.get("error") or "unknown error")
                cls = BaseNotGreenError if err.startswith("BaseNotGreenError") else CESError
                raise cls(f"CES batch {batch_id} failed: {err}")
            if deadline is not None and time.monotonic() > deadline:
                raise CESError(
                    f"CES batch {batch_id} not judged after {timeout_s} s (status "
                    f"{info['status']}); poll again later or raise the timeout."
                )
            time.sleep(poll_s)

    def evaluate(
        self,
        base: BaseSpec | str,
        diffs: Sequence[str],
        *,
        allow_lenient: bool = False,
        timeout_s: float | None = None,
        wait_s: float | None = None,
    ) -> list[Verdict]:
        """Submit and wait: one verdict per diff, in order."""
        batch_id = self.submit(base, diffs, allow_lenient=allow_lenient, timeout_s=timeout_s)
        return self.wait(batch_id, timeout_s=wait_s)


def token_from_env(var: str | None) -> str | None:
    """The token in environment variable ``var``; an error when it is named but empty."""
    if not var:
        return None
    value = os.environ.get(var, "")
    if not value:
        raise CESError(f"--token-env {var}: the environment variable {var} is empty or unset.")
    return value
