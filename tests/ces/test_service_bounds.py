"""The CES service's bounds (body cap, kept batches by count, bytes and age, queued bytes), its
test-edit policy gate, and its client as a real ``CESBackend`` — all on a real loopback uvicorn
server over the scripted backend at the ``CESBackend`` seam."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from bactrian.ces.backends import BACKENDS
from bactrian.ces.client import CESClient
from bactrian.ces.config import EDITS_TESTS_POLICIES, CESConfig
from bactrian.ces.contract import BaseSpec, CESBackend, Job, Verdict
from bactrian.ces.service import BatchRunner, Retention, create_app
from bactrian.errors import CESError

from .loopback import serve_app
from .test_http import ScriptedBackend

TOKEN = "bounds-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class RecordingBackend(ScriptedBackend):
    """The scripted backend, remembering each job's policy and each warm call."""

    def __init__(self) -> None:
        super().__init__()
        self.policies: list[str | None] = []
        self.warmed: list[tuple[str, int | None]] = []

    def warm(self, base: BaseSpec, workers: int | None = None) -> dict[str, Any]:
        self.warmed.append((base.source, workers))
        return super().warm(base, workers)

    def evaluate(self, jobs: Sequence[Job]) -> list[Verdict]:
        self.policies += [j.edits_tests_policy for j in jobs]
        return super().evaluate(jobs)


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def app(backend: RecordingBackend) -> Any:
    return create_app(
        backend,
        token=TOKEN,
        max_body_bytes=64 * 1024,
        retention=Retention(keep=1000, keep_bytes=20_000, keep_s=3600.0),
    )


@pytest.fixture
def url(app: Any) -> Iterator[str]:
    with serve_app(app) as base:
        yield base


def test_a_body_over_the_cap_gets_413_with_a_clear_message(url: str) -> None:
    big = {"base": {"source": "/repo"}, "diffs": ["x" * (100 * 1024)]}
    resp = httpx.post(f"{url}/v1/batches", json=big, headers=AUTH)
    assert resp.status_code == 413
    assert "at most 65536 bytes" in resp.json()["detail"]
    # a streamed (chunked) body with no length up front is cut off as well
    chunks = (b"x" * 8192 for _ in range(20))
    resp = httpx.post(
        f"{url}/v1/batches",
        content=chunks,
        headers={**AUTH, "content-type": "application/json"},
    )
    assert resp.status_code == 413
    assert "too large" in resp.json()["detail"]
    # under the cap the service still serves
    with CESClient(url, token=TOKEN) as ces:
        assert len(ces.evaluate("/repo", ["x" * 1000], wait_s=20)) == 1
        with pytest.raises(CESError, match="413"):
            ces.submit("/repo", ["y" * (100 * 1024)])


def test_kept_batches_are_bounded_by_bytes_and_let_go_of_their_diffs(url: str, app: Any) -> None:
    runner: BatchRunner = app.state.runner
    ids = []
    with CESClient(url, token=TOKEN) as ces:
        for i in range(40):
            batch_id = ces.submit("/repo", [f"diff {i} " + "z" * 30_000])
            ces.wait(batch_id, timeout_s=20)
            ids.append(batch_id)
        kept = runner.kept()
        # each verdict list is ~300 bytes: the 20 kB bound keeps far fewer than 40 batches
        assert kept["bytes"] <= 20_000 + 1_000
        assert 1 <= kept["batches"] < 40
        with pytest.raises(CESError, match="404.*MB of verdicts"):
            ces.batch(ids[0])
        assert ces.batch(ids[-1])["status"] == "done"
    with runner._lock:
        assert all(b.jobs == [] for b in runner._batches.values())  # no diff held after judging


def test_finished_batches_expire_by_age(backend: RecordingBackend) -> None:
    app = create_app(backend, token=TOKEN, retention=Retention(keep_s=0.0))
    with serve_app(app) as url:
        resp = httpx.post(
            f"{url}/v1/evaluate", json={"base": {"source": "/r"}, "diffs": ["a"]}, headers=AUTH
        )
        assert resp.status_code == 200
        batch_id = resp.json()["id"]
        assert httpx.get(f"{url}/v1/batches/{batch_id}", headers=AUTH).status_code == 404
        assert app.state.runner.kept() == {"batches": 0, "bytes": 0}


def test_queued_diff_bytes_are_bounded(backend: RecordingBackend) -> None:
    app = create_app(backend, token=TOKEN, retention=Retention(max_pending_bytes=50_000))
    with serve_app(app) as url, CESClient(url, token=TOKEN) as ces:
        backend.gate.clear()  # nothing gets judged: batches pile up
        first = ces.submit("/r", ["a" * 30_000])
        with pytest.raises(CESError, match="503.*busy"):
            ces.submit("/r", ["b" * 30_000])
        backend.gate.set()
        ces.wait(first, timeout_s=20)
        assert len(ces.evaluate("/r", ["c" * 30_000], wait_s=20)) == 1


def test_trust_is_refused_over_http_unless_the_service_allows_it(
    url: str, backend: RecordingBackend
) -> None:
    with CESClient(url, token=TOKEN) as ces:
        with pytest.raises(CESError, match="403.*--allow-trust"):
            ces.submit("/repo", ["x"], edits_tests_policy="trust")
        with pytest.raises(CESError, match="422.*not a policy"):
            ces.submit("/repo", ["x"], edits_tests_policy="yolo")
        for policy in EDITS_TESTS_POLICIES:
            if policy != "trust":
                ces.evaluate("/repo", ["x"], edits_tests_policy=policy, wait_s=20)
    assert backend.policies == [p for p in EDITS_TESTS_POLICIES if p != "trust"]
    allowing = create_app(backend, token=TOKEN, allow_trust=True)
    with serve_app(allowing) as other, CESClient(other, token=TOKEN) as ces:
        ces.evaluate("/repo", ["x"], edits_tests_policy="trust", wait_s=20)
    assert backend.policies[-1] == "trust"


def test_the_client_is_a_backend_warm_evaluate_status(url: str, backend: RecordingBackend) -> None:
    with CESClient(url, token=TOKEN, batch_bytes=10) as ces:
        assert isinstance(ces, CESBackend)
        info = ces.warm(BaseSpec("/repo"), 3)
        assert info["workers"] == 3 and backend.warmed == [("/repo", 3)]
        jobs = [
            Job(BaseSpec("/repo"), "green"),
            Job(BaseSpec("/repo"), "FAIL:build"),
            Job(BaseSpec("/other"), "FAIL:apply", edits_tests_policy="pristine"),
            Job(BaseSpec("/repo"), "green again"),
        ]
        verdicts = ces.evaluate(jobs)
        assert [v.job_id for v in verdicts] == [j.id for j in jobs]
        assert [v.furthest for v in verdicts] == ["test", "typecheck", None, "test"]
        assert backend.policies == [None, None, "pristine", None]
        assert len(backend.calls) == 4  # split by base, options and the 10-byte batch bound
        assert ces.evaluate([]) == []
        st = ces.status()
        assert st["backend"] == "http" and st["remote_backend"] == "scripted"
        assert st["workers"] == 2 and st["queued_jobs"] == 0


def test_http_backend_from_config(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from bactrian.ces import api

    monkeypatch.setenv("CES_BOUNDS_TOKEN", TOKEN)
    config = CESConfig(url=url, token_env="CES_BOUNDS_TOKEN")
    try:
        be = api.get_backend(None, config)
        assert be.name == "http" and isinstance(be, CESClient)
        verdicts = api.evaluate("/repo", ["a", "FAIL:test"], config=config)
        assert [v.furthest for v in verdicts] == ["test", "build"]
        assert api.backend_name(None, CESConfig()) == "local"
    finally:
        api.shutdown()
    with pytest.raises(CESError, match=r"\[ces\] url"):
        BACKENDS.get("http")(CESConfig())
