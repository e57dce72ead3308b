"""The CES HTTP service on a real loopback uvicorn server, over a scripted backend at the
``CESBackend`` seam (the real-dune end-to-end run is in ``test_http_serve.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from bactrian.ces.client import CESClient
from bactrian.ces.contract import STAGES, BaseSpec, Job, StageResult, Verdict
from bactrian.ces.metrics import parse_samples, sample
from bactrian.ces.service import create_app
from bactrian.errors import BaseNotGreenError, CESError

from .loopback import free_port, serve_app

TOKEN = "s3cret-token"


class ScriptedBackend:
    """Judges a diff by a marker in its text: ``FAIL:<stage>`` fails that stage, ``KILL`` adds
    a sandbox kill, ``NOTGREEN`` in the base source refuses the base."""

    name = "scripted"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.status_gate = threading.Event()  # cleared: status() hangs, like a warming backend
        self.status_gate.set()

    def warm(self, base: BaseSpec, workers: int | None = None) -> dict[str, Any]:
        return {"key": base.key(), "workers": workers or 1, "warm_s": 0.0}

    def evaluate(self, jobs: Sequence[Job]) -> list[Verdict]:
        self.gate.wait(10)
        self.calls.append([j.diff for j in jobs])
        out = []
        for i, job in enumerate(jobs):
            if "NOTGREEN" in job.base.source:
                raise BaseNotGreenError(f"Base {job.base.source} is not green: build failed.")
            fail = next((s for s in STAGES if f"FAIL:{s}" in job.diff), None)
            stages, furthest = [], None
            for s in STAGES:
                if fail == s:
                    stages.append(StageResult(s, "failed", 0.02, "boom", 1))
                    break
                stages.append(StageResult(s, "passed", 0.01 * (i + 1), "", 0))
                furthest = s
            flags = ["sandbox-kill"] if "KILL" in job.diff else []
            out.append(
                Verdict(
                    job_id=job.id,
                    ok=fail is None,
                    furthest=furthest,
                    stages=stages,
                    reward=1.0 if fail is None else 0.1,
                    worker="w0",
                    flags=flags,
                )
            )
        return out

    def status(self) -> dict[str, Any]:
        self.status_gate.wait(10)
        return {"backend": self.name, "workers": 2, "queue_depth": 0, "counters": {"resets": 7}}

    def close(self) -> None:
        pass


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
def url(backend: ScriptedBackend) -> Iterator[str]:
    app = create_app(backend, token=TOKEN, status_timeout_s=0.5)
    with serve_app(app) as url:
        try:
            yield url
        finally:  # a request still waiting on the backend ends before the server stops
            backend.gate.set()
            backend.status_gate.set()


def test_batch_is_judged_in_background_and_verdicts_keep_diff_order(
    url: str, backend: ScriptedBackend
) -> None:
    diffs = ["green", "FAIL:typecheck", "FAIL:test", "FAIL:apply"]
    with CESClient(url, token=TOKEN) as ces:
        backend.gate.clear()  # hold the backend: the submit must return before judging
        batch_id = ces.submit(BaseSpec("/repo"), diffs)
        assert ces.batch(batch_id)["status"] in ("queued", "running")
        backend.gate.set()
        verdicts = ces.wait(batch_id, timeout_s=20)
    assert [v.furthest for v in verdicts] == ["test", "parse", "build", None]
    assert [v.ok for v in verdicts] == [True, False, False, False]
    assert backend.calls == [diffs]
    assert verdicts[1].stage("typecheck") is not None
    assert verdicts[1].stage("typecheck").status == "failed"  # type: ignore[union-attr]


def test_sync_evaluate_route_returns_verdicts(url: str) -> None:
    body = {"base": {"source": "/repo"}, "diffs": ["FAIL:build", "x"]}
    resp = httpx.post(f"{url}/v1/evaluate", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200
    got = [Verdict.from_dict(v) for v in resp.json()["verdicts"]]
    assert [v.furthest for v in got] == ["typecheck", "test"]


def test_status_route_reports_the_backend(url: str) -> None:
    resp = httpx.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["backend"] == "scripted"
    assert body["queued_jobs"] == 0
    assert body["status"]["counters"] == {"resets": 7}


def test_token_is_required_except_for_health(url: str) -> None:
    body = {"base": {"source": "/repo"}, "diffs": ["x"]}
    assert httpx.get(f"{url}/healthz").json()["ok"] is True
    assert httpx.get(f"{url}/v1/status").status_code == 401
    assert httpx.post(f"{url}/v1/batches", json=body).status_code == 401
    assert httpx.get(f"{url}/metrics").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.post(f"{url}/v1/evaluate", json=body, headers=wrong).status_code == 401
    with pytest.raises(CESError, match="401"), CESClient(url) as anonymous:
        anonymous.submit("/repo", ["x"])
    with CESClient(url, token=TOKEN) as ces:
        assert len(ces.evaluate("/repo", ["x"], wait_s=20)) == 1


def test_metrics_count_outcomes_stages_and_kills(url: str) -> None:
    with CESClient(url, token=TOKEN) as ces:
        before = parse_samples(ces.metrics())
        assert sample(before, "bactrian_ces_jobs_total", outcome="ok") == 0
        ces.evaluate("/repo", ["a", "b KILL", "FAIL:typecheck", "FAIL:test"], wait_s=20)
        text = ces.metrics()
    m = parse_samples(text)
    assert sample(m, "bactrian_ces_jobs_total", outcome="ok") == 2
    assert sample(m, "bactrian_ces_jobs_total", outcome="failed_typecheck") == 1
    assert sample(m, "bactrian_ces_jobs_total", outcome="failed_test") == 1
    assert sample(m, "bactrian_ces_stage_seconds_count", stage="apply", status="passed") == 4
    assert sample(m, "bactrian_ces_stage_seconds_count", stage="test", status="failed") == 1
    assert sample(m, "bactrian_ces_sandbox_kills_total") == 1
    assert sample(m, "bactrian_ces_resets_total") == 4
    assert sample(m, "bactrian_ces_batches_total", status="done") == 1
    assert sample(m, "bactrian_ces_backend_resets") == 7
    assert sample(m, "bactrian_ces_workers") == 2
    assert "bactrian_ces_queue_depth 0.0" in text


def test_metrics_answer_while_the_backend_status_hangs(url: str, backend: ScriptedBackend) -> None:
    with CESClient(url, token=TOKEN) as ces:
        fresh = parse_samples(ces.metrics())
        backend.status_gate.clear()
        stale = parse_samples(ces.metrics())
        backend.status_gate.set()
    assert sample(fresh, "bactrian_ces_backend_status_stale") == 0
    assert sample(stale, "bactrian_ces_backend_status_stale") == 1
    assert sample(stale, "bactrian_ces_backend_resets") == 7  # the last answer, shown again


def test_queue_depth_counts_jobs_waiting_behind_a_running_batch(
    url: str, backend: ScriptedBackend
) -> None:
    with CESClient(url, token=TOKEN) as ces:
        backend.gate.clear()
        first = ces.submit("/repo", ["a"])
        deadline = time.monotonic() + 10
        while ces.batch(first)["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = ces.submit("/repo", ["b", "c", "d"])
        depth = sample(parse_samples(ces.metrics()), "bactrian_ces_queue_depth")
        backend.gate.set()
        ces.wait(second, timeout_s=20)
    assert depth == 3


def test_base_not_green_is_an_error_not_a_verdict(url: str) -> None:
    with CESClient(url, token=TOKEN) as ces:
        batch_id = ces.submit("/NOTGREEN", ["x"])
        with pytest.raises(BaseNotGreenError, match="not green"):
            ces.wait(batch_id, timeout_s=20)
        assert ces.batch(batch_id)["status"] == "error"
        with pytest.raises(BaseNotGreenError, match="not green"):
            ces.evaluate("/NOTGREEN", ["x"])  # the service keeps serving after it
        assert len(ces.evaluate("/repo", ["x"], wait_s=20)) == 1
    resp = httpx.post(
        f"{url}/v1/evaluate",
        json={"base": {"source": "/NOTGREEN"}, "diffs": ["x"]},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.status_code == 422
    assert "not green" in resp.json()["detail"]


def test_bad_requests_are_explained(url: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    empty = httpx.post(
        f"{url}/v1/batches", json={"base": {"source": "/r"}, "diffs": []}, headers=auth
    )
    assert empty.status_code == 422
    missing = httpx.get(f"{url}/v1/batches/does-not-exist", headers=auth)
    assert missing.status_code == 404
    assert "Submit it again" in missing.json()["detail"]
    with CESClient(url, token=TOKEN) as ces, pytest.raises(CESError, match="404"):
        ces.batch("does-not-exist")


def test_client_explains_an_unreachable_service() -> None:
    with (
        CESClient(f"http://127.0.0.1:{free_port()}", timeout_s=2) as ces,
        pytest.raises(CESError, match="Cannot reach the CES service"),
    ):
        ces.health()


def test_unknown_backend_name_suggests_the_right_one() -> None:
    from bactrian.ces.backends import make_backend
    from bactrian.ces.config import CESConfig
    from bactrian.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean: local"):
        make_backend("locl", CESConfig())


def test_token_env_must_name_a_set_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from bactrian.ces.client import token_from_env

    monkeypatch.delenv("CES_NO_SUCH_TOKEN", raising=False)
    with pytest.raises(CESError, match="CES_NO_SUCH_TOKEN"):
        token_from_env("CES_NO_SUCH_TOKEN")
    monkeypatch.setenv("CES_SOME_TOKEN", "abc")
    assert token_from_env("CES_SOME_TOKEN") == "abc"
    assert token_from_env(None) is None


def test_allowed_roots_refuse_bases_outside_them(tmp_path: Path, backend: ScriptedBackend) -> None:
    from fastapi.testclient import TestClient

    inside = tmp_path / "repos" / "a"
    inside.mkdir(parents=True)
    app = create_app(backend, allowed_roots=[tmp_path / "repos"])
    with TestClient(app) as http:
        ok = http.post("/v1/evaluate", json={"base": {"source": str(inside)}, "diffs": ["x"]})
        assert ok.status_code == 200
        for source in (str(tmp_path), str(inside / ".." / ".." / "x"), "/etc", "https://x/y.git"):
            bad = http.post("/v1/batches", json={"base": {"source": source}, "diffs": ["x"]})
            assert bad.status_code == 403, source
            assert "--allow-root" in bad.json()["detail"]
