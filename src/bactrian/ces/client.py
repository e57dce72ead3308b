"""The client of the CES HTTP service (``bactrian ces serve``), itself a
:class:`~bactrian.ces.contract.CESBackend` named ``http``: training, evaluation and the sidecar
judge through a remote pool with the same code as through a local one::

    with CESClient("http://127.0.0.1:8765", token=...) as ces:
        ces.warm(BaseSpec("/path/to/repo"), workers=4)
        verdicts = ces.evaluate([Job(BaseSpec("/path/to/repo"), diff) for diff in diffs])
        ces.status()

    get_backend("http", CESConfig(url="http://127.0.0.1:8765"))   # the same, from config

``evaluate`` also keeps its batch form ``evaluate(base, diffs, wait_s=...)``. Jobs go out as
batches (consecutive jobs with the same base and options share one), each under the service's
body cap; the verdicts come back in job order with the jobs' own ids. Bases are named by path
on the *service's* machine. Only ``httpx`` is imported: no worker, sandbox or web framework.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from bactrian.ces.contract import BaseSpec, Job, Verdict
from bactrian.errors import BaseNotGreenError, CESError

if TYPE_CHECKING:
    from bactrian.ces.config import CESConfig

DEFAULT_URL = "http://127.0.0.1:8765"
DEFAULT_BATCH_BYTES = 16 * 1024 * 1024  # split job lists into batches of at most this much


class CESClient:
    """A client of the CES HTTP service and a ``CESBackend`` (``name = "http"``)."""

    name = "http"

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
        warm_timeout_s: float = 1800.0,
        transport: httpx.BaseTransport | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        poll_s: float = 0.2,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.warm_timeout_s = warm_timeout_s
        self.batch_bytes = batch_bytes
        self.poll_s = poll_s
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout_s, transport=transport
        )

    @classmethod
    def from_config(cls, config: CESConfig) -> CESClient:
        """The client of ``[ces] url``, its token from ``[ces] token_env``."""
        if not config.url:
            raise CESError(
                "The 'http' CES backend needs the service's address: set [ces] url (or "
                "BACTRIAN_CES_URL), e.g. http://127.0.0.1:8765, where `bactrian ces serve` runs."
            )
        return cls(
            config.url,
            token=token_from_env(config.token_env) if config.token_env else None,
            timeout_s=config.http_timeout_s,
            warm_timeout_s=config.warm_timeout_s,
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
    def _base(base: BaseSpec | str) -> dict[str, Any]:
        spec = BaseSpec.coerce(base)
        return {
            "source": spec.source,
            "rev": spec.rev,
            "vcs": spec.vcs,
            "stages": dict(spec.stages),
            "adapter": spec.adapter,
        }

    @classmethod
    def _body(
        cls,
        base: BaseSpec | str,
        diffs: Sequence[str],
        allow_lenient: bool,
        timeout_s: float | None,
        edits_tests_policy: str | None = None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {"allow_lenient": allow_lenient, "timeout_s": timeout_s}
        if edits_tests_policy is not None:
            options["edits_tests_policy"] = edits_tests_policy
        return {"base": cls._base(base), "diffs": list(diffs), "options": options}

    # ----------------------------------------------------------------- the service's routes
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
        edits_tests_policy: str | None = None,
    ) -> str:
        """Submit a batch; returns its id."""
        body = self._body(base, diffs, allow_lenient, timeout_s, edits_tests_policy)
        return str(self._request("POST", "/v1/batches", json=body).json()["id"])

    def batch(self, batch_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/batches/{batch_id}").json())

    def wait(
        self, batch_id: str, *, poll_s: float | None = None, timeout_s: float | None = None
    ) -> list[Verdict]:
        """Poll until the batch is judged; its verdicts in diff order. The first polls come
        quickly (a diff that fails at ``apply`` is judged in milliseconds), then every
        ``poll_s``."""
        poll = self.poll_s if poll_s is None else poll_s
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        wait = min(poll, 0.01)
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
            time.sleep(wait)
            wait = min(poll, wait * 2)

    # ----------------------------------------------------------------- CESBackend
    def warm(self, base: BaseSpec, workers: int | None = None) -> dict[str, Any]:
        """Have the service warm ``workers`` trees for ``base`` (waits up to
        ``warm_timeout_s``: a cold build of a real repository takes minutes)."""
        body = {"base": self._base(base), "workers": workers}
        resp = self._request("POST", "/v1/warm", json=body, timeout=self.warm_timeout_s)
        return dict(resp.json())

    def evaluate(
        self,
        jobs: Sequence[Job] | BaseSpec | str,
        diffs: Sequence[str] | None = None,
        *,
        allow_lenient: bool = False,
        timeout_s: float | None = None,
        wait_s: float | None = None,
        edits_tests_policy: str | None = None,
    ) -> list[Verdict]:
        """``evaluate(jobs)`` (the backend call): one verdict per job, in order, each with its
        job's id. ``evaluate(base, diffs, ...)``: submit one batch and wait for it."""
        if isinstance(jobs, (BaseSpec, str)):
            batch_id = self.submit(
                jobs,
                diffs or [],
                allow_lenient=allow_lenient,
                timeout_s=timeout_s,
                edits_tests_policy=edits_tests_policy,
            )
            return self.wait(batch_id, timeout_s=wait_s)
        job_list = list(jobs)
        if not job_list:
            return []
        groups = self._groups(job_list)
        submitted = [
            (
                self.submit(
                    g[0].base,
                    [j.diff for j in g],
                    allow_lenient=g[0].allow_lenient,
                    timeout_s=g[0].timeout_s,
                    edits_tests_policy=g[0].edits_tests_policy,
                ),
                g,
            )
            for g in groups
        ]
        out: list[Verdict] = []
        for batch_id, group in submitted:
            verdicts = self.wait(batch_id, timeout_s=wait_s)
            for job, v in zip(group, verdicts, strict=True):
                v.job_id = job.id
                out.append(v)
        return out

    def _groups(self, jobs: list[Job]) -> list[list[Job]]:
        """Consecutive jobs with the same base and options, at most ``batch_bytes`` of diffs
        (and 10,000 diffs) per group."""
        groups: list[list[Job]] = []
        key_of = None
        size = 0
        for job in jobs:
            key = json.dumps(
                [job.base.to_dict(), job.allow_lenient, job.timeout_s, job.edits_tests_policy],
                sort_keys=True,
            )
            if (
                not groups
                or key != key_of
                or size + len(job.diff) > self.batch_bytes
                or len(groups[-1]) >= 10_000
            ):
                groups.append([])
                key_of, size = key, 0
            groups[-1].append(job)
            size += len(job.diff)
        return groups

    def status(self) -> dict[str, Any]:
        """The remote backend's status, with ``backend = "http"`` and the service's own
        queue (``remote_backend`` names the pool behind it)."""
        info = dict(self._request("GET", "/v1/status").json())
        st = dict(info.get("status") or {})
        return {
            **st,
            "backend": self.name,
            "url": self.url,
            "remote_backend": info.get("backend"),
            "queued_jobs": info.get("queued_jobs", 0),
            "kept": info.get("kept"),
        }


def token_from_env(var: str | None) -> str | None:
    """The token in environment variable ``var``; an error when it is named but empty."""
    if not var:
        return None
    value = os.environ.get(var, "")
    if not value:
        raise CESError(f"--token-env {var}: the environment variable {var} is empty or unset.")
    return value
