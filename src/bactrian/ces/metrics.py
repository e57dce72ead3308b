"""Prometheus metrics of a CES service.

Each :class:`CESMetrics` owns its own :class:`prometheus_client.CollectorRegistry` (not the
process-global one), so several services — or several tests — in one process do not collide.
Metrics come from two places: every verdict the service hands out (:meth:`CESMetrics.observe`)
and, at scrape time, the backend's own ``status()`` (queue depth and its counters).

Exposed (all prefixed ``bactrian_ces_``):

- ``jobs_total{outcome}`` — judged jobs; ``outcome`` is ``ok``, ``failed_<stage>`` (the first
  stage that did not pass) or ``error`` (an infrastructure error, not a verdict on the diff).
- ``stage_seconds{stage,status}`` — histogram of each stage's duration.
- ``job_seconds`` — histogram of a job's total stage time.
- ``batches_total{status}`` — batches finished (``done``/``error``).
- ``queue_depth`` — jobs accepted by the service and not yet judged, plus the backend's own.
- ``resets_total``, ``rebuilds_total``, ``sandbox_kills_total``, ``timeouts_total``,
  ``edits_tests_total`` — from verdict flags (a reset follows every job a worker ran).
- ``backend_<counter>`` — each numeric counter the backend reports in ``status()``;
  ``backend_status_stale`` is 1 when ``status()`` did not answer within the scrape's timeout.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bactrian.ces.contract import STAGES, Verdict

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "bactrian_ces_"
STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def outcome(verdict: Verdict) -> str:
    """``ok``, ``error``, ``test_guard_off`` (every stage passed, the tests could not be
    counted) or ``failed_<first stage that did not pass>``."""
    if verdict.error:
        return "error"
    if verdict.ok:
        return "ok"
    if "test-guard-off" in verdict.flags:
        return "test_guard_off"
    for stage in verdict.stages:
        if stage.status not in ("passed", "skipped"):
            return f"failed_{stage.name}"
    idx = STAGES.index(verdict.furthest) + 1 if verdict.furthest in STAGES else 0
    return f"failed_{STAGES[idx]}" if idx < len(STAGES) else "failed"


class _BackendCollector(Collector):
    """Reads ``status()`` at scrape time: queue depth and the backend's counters.

    ``status()`` runs on a helper thread and is given ``timeout_s``: a backend busy warming a
    base may hold its lock for minutes, and a scrape must not hang that long. Past the timeout
    the last answer is reported again and ``backend_status_stale`` is 1."""

    def __init__(
        self,
        status: Callable[[], dict[str, Any]],
        pending: Callable[[], int],
        timeout_s: float = 2.0,
    ) -> None:
        self._status = status
        self._pending = pending
        self._timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ces-metrics-status")
        self._future: Future[dict[str, Any]] | None = None
        self._last: dict[str, Any] = {}

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names vary with the backend; do not call status() at registration

    def _read(self) -> tuple[dict[str, Any], bool]:
        if self._future is None or self._future.done():
            self._future = self._executor.submit(self._status)
        try:
            self._last = self._future.result(timeout=self._timeout_s) or {}
            return self._last, False
        except FutureTimeout:
            return self._last, True
        except Exception as exc:  # a scrape must not fail because the backend is busy or gone
            log.warning("CES backend status() failed during a metrics scrape: %s", exc)
            return self._last, True

    def collect(self) -> Iterator[Metric]:
        st, stale = self._read()
        stale_g = GaugeMetricFamily(
            PREFIX + "backend_status_stale",
            "1 when the backend's status() did not answer in time and older values are shown.",
        )
        stale_g.add_metric([], 1.0 if stale else 0.0)
        yield stale_g
        depth = GaugeMetricFamily(
            PREFIX + "queue_depth",
            "Jobs accepted and not yet judged (service queue plus the backend's own).",
        )
        backend_depth = st.get("queue_depth", 0)
        depth.add_metric(
            [], float(self._pending() + (backend_depth if _is_number(backend_depth) else 0))
        )
        yield depth
        workers: Any = st.get("workers")
        if _is_number(workers):
            g = GaugeMetricFamily(PREFIX + "workers", "Warm workers in the backend.")
            g.add_metric([], float(workers))
            yield g
        for name, value in sorted((st.get("counters") or {}).items()):
            if not _is_number(value):
                continue
            metric = PREFIX + "backend_" + re.sub(r"[^a-zA-Z0-9_]", "_", str(name))
            g = GaugeMetricFamily(metric, f"Backend counter {name!r} as reported by status().")
            g.add_metric([], float(value))
            yield g


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class CESMetrics:
    """The metrics of one CES service instance."""

    def __init__(
        self,
        status: Callable[[], dict[str, Any]] | None = None,
        pending: Callable[[], int] | None = None,
        status_timeout_s: float = 2.0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Counter(PREFIX + "jobs", "Judged jobs by outcome.", ["outcome"], registry=r)
        self.stage_seconds = Histogram(
            PREFIX + "stage_seconds",
            "Duration of each stage.",
            ["stage", "status"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.job_seconds = Histogram(
            PREFIX + "job_seconds", "Total stage time of a job.", buckets=STAGE_BUCKETS, registry=r
        )
        self.batches = Counter(PREFIX + "batches", "Finished batches.", ["status"], registry=r)
        self.resets = Counter(PREFIX + "resets", "Worker resets after a job.", registry=r)
        self.rebuilds = Counter(PREFIX + "rebuilds", "Workers rebuilt from scratch.", registry=r)
        self.sandbox_kills = Counter(
            PREFIX + "sandbox_kills", "Stage process groups killed by the sandbox.", registry=r
        )
        self.timeouts = Counter(PREFIX + "timeouts", "Stages that ran out of time.", registry=r)
        self.edits_tests = Counter(
            PREFIX + "edits_tests", "Diffs flagged for editing or deleting tests.", registry=r
        )
        for stage in STAGES:  # expose every series from the start, at zero
            for stage_status in ("passed", "failed"):
                self.stage_seconds.labels(stage, stage_status)
        self.tests_tampered = Counter(
            PREFIX + "tests_tampered",
            "Test stages failed because the base's test files changed during the job.",
            registry=r,
        )
        for name in ("ok", "error", "test_guard_off", *(f"failed_{s}" for s in STAGES)):
            self.jobs.labels(name)
        for name in ("done", "error"):
            self.batches.labels(name)
        r.register(_BackendCollector(status or dict, pending or (lambda: 0), status_timeout_s))

    def observe(self, verdicts: Iterable[Verdict]) -> None:
        for v in verdicts:
            self.jobs.labels(outcome(v)).inc()
            total = 0.0
            for stage in v.stages:
                if stage.status == "skipped":
                    continue
                self.stage_seconds.labels(stage.name, stage.status).observe(stage.duration_s)
                total += stage.duration_s
            self.job_seconds.observe(total)
            flags = set(v.flags)
            if v.worker and not v.error:
                self.resets.inc()
            if "worker-rebuilt" in flags:
                self.rebuilds.inc()
            if "sandbox-kill" in flags:
                self.sandbox_kills.inc()
            if "timeout" in flags or any(s.status == "timeout" for s in v.stages):
                self.timeouts.inc()
            if "edits-tests" in flags:
                self.edits_tests.inc()
            if "tests-tampered" in flags:
                self.tests_tampered.inc()

    def batch_finished(self, status: str) -> None:
        self.batches.labels(status).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def parse_samples(text: str) -> dict[str, float]:
    """``{"name{labels}": value}`` from Prometheus text — for tests and quick scripts."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def sample(samples: dict[str, float], name: str, **labels: str) -> float:
    """The value of one series in :func:`parse_samples` output (0.0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return samples.get(f"{name}{{{want}}}" if want else name, 0.0)


__all__: Sequence[str] = ("CESMetrics", "CONTENT_TYPE", "outcome", "parse_samples", "sample")
