"""The ``local`` CES backend: a pool of worker threads, each driving sandboxed subprocesses.

Bases live under ``work_dir/bases/<key>/`` (``pristine/`` export + ``w<i>/`` workers). The first
worker of a base builds from scratch; the others copy its warm tree including ``_build`` (every
worker sees its tree at the same path inside the sandbox, so dune's build state carries over)
and only confirm green incrementally. Up to ``max_bases`` bases stay warm, least recently used
evicted. A lock file per base directory keeps two processes from sharing worker trees.
"""

from __future__ import annotations

import fcntl
import json
import queue
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bactrian.ces import tree
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import STAGES, BaseSpec, Job, StageResult, Verdict
from bactrian.ces.worker import Worker


@dataclass
class _BasePool:
    key: str
    spec: BaseSpec
    dir: Path
    workers: list[Worker]
    free: queue.Queue[Worker]
    lock_fh: IO[str]
    warm_s: float
    used: float = field(default_factory=time.monotonic)
    pins: int = 0  # batches in flight that use this pool: never evicted while > 0


class LocalBackend:
    """:class:`~bactrian.ces.contract.CESBackend` on this machine."""

    name = "local"

    def __init__(self, config: CESConfig | None = None) -> None:
        self.config = config or CESConfig.load()
        self.work_dir = self.config.resolved_work_dir()
        self._pools: OrderedDict[str, _BasePool] = OrderedDict()
        self._lock = threading.RLock()
        self._queued = 0
        self._running = 0
        self.counters: dict[str, float] = {
            "jobs": 0,
            "ok": 0,
            "errors": 0,
            "retries": 0,
            "warms": 0,
            "evictions": 0,
        }
        self.stage_seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.stage_counts: dict[str, int] = dict.fromkeys(STAGES, 0)
        self.furthest_counts: dict[str, int] = {}
        self._closed_workers: dict[str, float] = {"resets": 0, "rebuilds": 0, "sandbox_kills": 0}

    # ----------------------------------------------------------------- bases
    def warm(self, base: BaseSpec, workers: int | None = None) -> dict[str, Any]:
        pool = self._pool(base, workers)
        return {
            "key": pool.key,
            "workers": len(pool.workers),
            "warm_s": round(pool.warm_s, 3),
            "dir": str(pool.dir),
            "base": pool.spec.to_dict(),
            "base_tests": pool.workers[0].base_tests if pool.workers else None,
        }

    def _pool(self, base: BaseSpec, workers: int | None, *, pin: bool = False) -> _BasePool:
        spec = tree.resolve(base)
        key = spec.key()
        want = workers or self.config.resolved_workers()
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None and len(pool.workers) >= want:
                pool.used = time.monotonic()
                pool.pins += pin
                self._pools.move_to_end(key)
                return pool
            start = time.monotonic()
            if pool is None:
                pool = self._new_pool(key, spec)
                self._pools[key] = pool
            try:
                self._grow(pool, want)
            except BaseException:
                if not pool.workers:
                    self._drop(key)
                raise
            pool.warm_s += time.monotonic() - start
            self.counters["warms"] += 1
            pool.pins += pin
            self._pools.move_to_end(key)
            self._evict()
            return pool

    def _evict(self) -> None:
        """Drop least recently used bases beyond ``max_bases``; a base that a batch in flight
        still uses is skipped (the pool may exceed the bound until that batch ends)."""
        while len(self._pools) > max(1, self.config.max_bases):
            oldest = next((k for k, p in self._pools.items() if p.pins == 0), None)
            if oldest is None:
                return
            self._drop(oldest, delete=True)
            self.counters["evictions"] += 1

    def _new_pool(self, key: str, spec: BaseSpec) -> _BasePool:
        root = self.work_dir / "bases"
        root.mkdir(parents=True, exist_ok=True)
        n = 0
        while True:  # a directory no other live process holds
            d = root / (key if n == 0 else f"{key}-{n}")
            d.mkdir(exist_ok=True)
            fh = open(d / ".lock", "w")  # noqa: SIM115 - held for the pool's lifetime
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                fh.close()
                n += 1
        pristine = d / "pristine"
        stamp = d / "pristine.ok"
        if not stamp.exists():
            shutil.rmtree(pristine, ignore_errors=True)
            tree.export(spec, pristine)
            stamp.write_text(spec.resolved_rev or "")
        (d / "base.json").write_text(json.dumps(spec.to_dict()))
        return _BasePool(key, spec, d, [], queue.Queue(), fh, 0.0)

    def _grow(self, pool: _BasePool, want: int) -> None:
        pristine = pool.dir / "pristine"
        # dune's -j from the pool's real size, not from [ces] workers
        config = self.config.for_pool(max(want, len(pool.workers)))
        for w in pool.workers:  # a grown pool: the workers already warm share the cores too
            w.config = config
            if w.adapter is not None and hasattr(w.adapter, "jobs"):
                w.adapter.jobs = config.build_jobs
        if not pool.workers:
            first = Worker(f"{pool.key[:8]}-w0", pool.spec, pool.dir / "w0", config, pristine)
            first.warm()
            pool.workers.append(first)
            pool.free.put(first)
        new = [
            Worker(f"{pool.key[:8]}-w{i}", pool.spec, pool.dir / f"w{i}", config, pristine)
            for i in range(len(pool.workers), want)
        ]
        if not new:
            return
        seed = pool.workers[0]
        with ThreadPoolExecutor(max_workers=len(new)) as ex:
            list(ex.map(lambda w: w.warm(clone_from=seed if not _reusable(w) else None), new))
        for w in new:
            pool.workers.append(w)
            pool.free.put(w)

    def _drop(self, key: str, *, delete: bool = False) -> None:
        pool = self._pools.pop(key, None)
        if pool is None:
            return
        for w in pool.workers:
            for k in self._closed_workers:
                self._closed_workers[k] += w.counters.get(k, 0)
            w.destroy() if delete else w.close()
        pool.lock_fh.close()
        if delete:
            shutil.rmtree(pool.dir, ignore_errors=True)

    # ----------------------------------------------------------------- jobs
    def evaluate(self, jobs: Sequence[Job]) -> list[Verdict]:
        if not jobs:
            return []
        pools: dict[int, _BasePool] = {}
        by_spec: dict[str, _BasePool] = {}
        try:
            for i, job in enumerate(jobs):
                spec_id = json.dumps(job.base.to_dict(), sort_keys=True)
                if spec_id not in by_spec:
                    by_spec[spec_id] = self._pool(job.base, None, pin=True)
                pools[i] = by_spec[spec_id]
            with self._lock:
                self._queued += len(jobs)
            n = sum(len(p.workers) for p in by_spec.values())
            with ThreadPoolExecutor(max_workers=max(1, n)) as ex:
                futures = [ex.submit(self._run_one, pools[i], job) for i, job in enumerate(jobs)]
                return [f.result() for f in futures]
        finally:
            with self._lock:
                for p in by_spec.values():
                    p.pins -= 1
                self._evict()

    def _run_one(self, pool: _BasePool, job: Job) -> Verdict:
        """Judge ``job``; an ``error`` verdict (the machine's fault, not the diff's) is retried
        once on a fresh worker — another worker of the pool, or this one rebuilt when it is
        the only one — and reported as ``error`` (no reward) if it fails again."""
        with self._lock:
            self._queued -= 1
            self._running += 1
        try:
            verdict, failed = self._attempt(pool, job, avoid=None)
            if verdict.state == "error":
                with self._lock:
                    self.counters["retries"] += 1
                verdict, _ = self._attempt(pool, job, avoid=failed)
                verdict.flags.append("retried")
        finally:
            with self._lock:
                self._running -= 1
        with self._lock:
            self.counters["jobs"] += 1
            self.counters["ok"] += int(verdict.ok)
            self.counters["errors"] += int(verdict.state == "error")
            key = verdict.furthest or "none"
            self.furthest_counts[key] = self.furthest_counts.get(key, 0) + 1
            for s in verdict.stages:
                if s.name in self.stage_seconds:
                    self.stage_seconds[s.name] += s.duration_s
                    self.stage_counts[s.name] += 1
        return verdict

    @staticmethod
    def _take(pool: _BasePool, avoid: Worker | None) -> Worker:
        """A free worker other than ``avoid`` (waits for one); when ``avoid`` is the pool's only
        worker, it is rebuilt from its base first."""
        if avoid is None or len(pool.workers) < 2:
            worker = pool.free.get()
            if worker is avoid:
                try:
                    worker.rebuild()
                except BaseException:
                    pool.free.put(worker)
                    raise
            return worker
        held = []
        while True:
            worker = pool.free.get()
            if worker is not avoid:
                break
            held.append(worker)
        for w in held:
            pool.free.put(w)
        return worker

    def _attempt(self, pool: _BasePool, job: Job, avoid: Worker | None) -> tuple[Verdict, Worker]:
        try:
            worker = self._take(pool, avoid)
        except Exception as exc:  # the rebuild of the only worker failed
            assert avoid is not None
            return _error_verdict(job, avoid.id, exc), avoid
        try:
            verdict = worker.judge(job)
        except Exception as exc:  # an infrastructure failure: report it, keep the pool alive
            verdict = _error_verdict(job, worker.id, exc)
        finally:
            pool.free.put(worker)
        return verdict, worker

    # ----------------------------------------------------------------- status
    def status(self) -> dict[str, Any]:
        with self._lock:
            pools = list(self._pools.values())
            worker_counters = dict(self._closed_workers)
            for p in pools:
                for w in p.workers:
                    for k in worker_counters:
                        worker_counters[k] += w.counters.get(k, 0)
            return {
                "backend": self.name,
                "work_dir": str(self.work_dir),
                "bases": [
                    {
                        "key": p.key,
                        "source": p.spec.source,
                        "rev": p.spec.rev,
                        "resolved_rev": p.spec.resolved_rev,
                        "workers": len(p.workers),
                        "idle": p.free.qsize(),
                        "warm_s": round(p.warm_s, 3),
                    }
                    for p in pools
                ],
                "workers": sum(len(p.workers) for p in pools),
                "queue_depth": self._queued,
                "running": self._running,
                "counters": {
                    **{k: int(v) for k, v in self.counters.items()},
                    **{k: int(v) for k, v in worker_counters.items()},
                },
                "stage_seconds": {k: round(v, 4) for k, v in self.stage_seconds.items()},
                "stage_counts": dict(self.stage_counts),
                "furthest": dict(self.furthest_counts),
            }

    def close(self) -> None:
        with self._lock:
            for key in list(self._pools):
                self._drop(key)


def _error_verdict(job: Job, worker: str, exc: BaseException) -> Verdict:
    """The machine failed on ``job``: state ``error``, no reward (see :class:`Verdict`)."""
    return Verdict(
        job_id=job.id,
        ok=False,
        furthest=None,
        stages=[StageResult("apply", "error", 0.0, str(exc), None)],
        worker=worker,
        error=f"{type(exc).__name__}: {exc}",
    )


def _reusable(w: Worker) -> bool:
    return (w.root / "state.json").is_file()


def disk_bases(work_dir: Path) -> list[dict[str, Any]]:
    """Bases left warm on disk by earlier processes (for ``bactrian ces status``)."""
    out = []
    for d in sorted((work_dir / "bases").glob("*")):
        if (d / "base.json").is_file():
            info = json.loads((d / "base.json").read_text())
            info["dir"] = str(d)
            info["workers"] = len([w for w in d.glob("w*") if (w / "state.json").is_file()])
            out.append(info)
    return out
