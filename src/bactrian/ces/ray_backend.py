"""The CES pool on Ray: the same :class:`bactrian.ces.worker.Worker` as Ray actors.

``RayBackend(config, address=None)`` connects to the Ray cluster at ``address`` (``"auto"``,
``"ray://head:10001"``, …) or, with no address, starts a small local Ray (``num_cpus`` from
the config, no dashboard). For each base it starts ``workers`` actors, one CPU each; every
actor holds its own warm tree under the work directory *of the node it runs on* and judges one
job at a time. A batch's jobs go to whichever actor is free next; verdicts come back in job
order. Bases are kept warm up to ``max_bases``, least recently used evicted (their actors
closed and killed).

On a multi-node cluster the base's ``source`` must be readable from every node (a shared file
system, or a repository path that exists on each node), just as each node needs OCaml, dune and
bubblewrap installed: Ray ships the job, not the toolchain.

Settings: ``[ces_ray]`` (``BACTRIAN_CES_RAY_*``) — see :class:`RayConfig`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bactrian.ces import tree
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, Job, Verdict
from bactrian.ces.worker import Worker
from bactrian.config import load_section
from bactrian.errors import CESError
from bactrian.rayutil import connect, ray_module, shutdown

log = logging.getLogger(__name__)


@dataclass
class RayConfig:
    address: str | None = None  # None: start a local Ray; "auto": the running cluster
    num_cpus: int = 0  # local Ray only; 0 = the CES worker count
    object_store_mb: int = 128  # local Ray only
    namespace: str = "bactrian-ces"

    @classmethod
    def load(cls, **overrides: Any) -> RayConfig:
        return load_section(cls, "ces_ray", overrides=overrides)


class _WorkerActor:
    """Wraps one :class:`Worker`; plain dicts cross the process boundary."""

    def __init__(self, worker_id: str, base: dict[str, Any], root: str, config: CESConfig) -> None:
        self.worker = Worker(worker_id, BaseSpec.from_dict(base), Path(root), config)

    def warm(self, clone: dict[str, Any] | None = None) -> dict[str, Any]:
        """Make the tree green: by copying ``clone`` (a warm sibling's ``{"node", "tree"}``,
        ``_build`` included) when it lives on this node, else from scratch."""
        node = _node_id()
        source = None
        if clone and clone.get("node") == node and Path(clone["tree"]).is_dir():
            source = _TreeSource(Path(clone["tree"]))
        self.worker.warm(clone_from=cast(Any, source))
        info = self.worker.info()
        return {**info, "node": node, "tree": str(self.worker.tree), "cloned": source is not None}

    def judge(self, job: dict[str, Any], fresh: bool = False) -> dict[str, Any]:
        """The verdict of ``job``; with ``fresh`` the worker first rebuilds its tree from its
        base (the retry of a job whose first try was an ``error`` here, with no other actor)."""
        if fresh:
            self.worker.rebuild()
        return self.worker.judge(Job.from_dict(job)).to_dict()

    def info(self) -> dict[str, Any]:
        return {**self.worker.info(), "tree": str(self.worker.tree), "uid": self.worker.uid}

    def close(self) -> None:
        self.worker.close()

    def pid(self) -> int:
        return os.getpid()


@dataclass
class _TreeSource:
    """What :meth:`Worker.warm` reads from ``clone_from``: the warm tree to copy."""

    tree: Path


def _node_id() -> str:
    return str(_ray().get_runtime_context().get_node_id())


@dataclass
class _Pool:
    key: str
    base: BaseSpec
    actors: list[Any]
    ids: list[str]
    warm_s: float
    used: float
    cloned: int = 0  # workers that copied a warm sibling's tree instead of building


def _ray() -> Any:
    return ray_module()


def _resolve(base: BaseSpec) -> BaseSpec:
    """Resolve the revision on the driver when the source is a local path here."""
    if base.resolved_rev or "://" in base.source or not Path(base.source).expanduser().is_dir():
        return base
    return tree.resolve(base)


class RayBackend:
    """:class:`~bactrian.ces.contract.CESBackend` running workers as Ray actors."""

    name = "ray"

    def __init__(
        self,
        config: CESConfig | None = None,
        *,
        address: str | None = None,
        ray_config: RayConfig | None = None,
    ) -> None:
        self.config = config or CESConfig.load()
        self.ray_config = ray_config or RayConfig.load()
        if address is not None:
            self.ray_config.address = address
        self._pools: OrderedDict[str, _Pool] = OrderedDict()
        self._lock = threading.RLock()  # short: the pool table, counters
        self._warm_lock = threading.Lock()  # long: one base warms at a time
        self._queued = 0
        self._started_ray = False
        self._actor_cls: Any = None
        self.counters: dict[str, int] = {
            "jobs": 0,
            "warms": 0,
            "evictions": 0,
            "actor_failures": 0,
            "replaced": 0,
            "errors": 0,
            "retries": 0,
            "rebuilds": 0,
        }

    # -- Ray session -----------------------------------------------------------------------

    def _connect(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            rc = self.ray_config
            ray, self._started_ray = connect(
                address=rc.address,
                num_cpus=rc.num_cpus or self.config.resolved_workers(),
                object_store_mb=rc.object_store_mb,
                namespace=rc.namespace,
                error=CESError,
            )
        if self._actor_cls is None:
            self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_WorkerActor)
        return ray

    # -- warm pools ------------------------------------------------------------------------

    def warm(self, base: BaseSpec, workers: int | None = None) -> dict[str, Any]:
        base = _resolve(BaseSpec.coerce(base))
        pool = self._pool(base, workers)
        return {
            "key": pool.key,
            "workers": len(pool.actors),
            "worker_ids": list(pool.ids),
            "warm_s": pool.warm_s,
            "cloned": pool.cloned,
            "backend": self.name,
        }

    def _pool(self, base: BaseSpec, workers: int | None = None) -> _Pool:
        """The warm pool of ``base``, warming it first if needed. Warming holds only the warm
        lock, so ``status()`` (and a metrics scrape) answers meanwhile."""
        key = base.key()
        with self._warm_lock:
            with self._lock:
                pool = self._pools.get(key)
                if pool is not None:
                    pool.used = time.monotonic()
                    self._pools.move_to_end(key)
                    return pool
            ray = self._connect()
            pool = self._start_pool(ray, key, base, workers or self.config.resolved_workers())
            with self._lock:
                self._pools[key] = pool
                self.counters["warms"] += 1
                evicted = []
                while len(self._pools) > max(1, self.config.max_bases):
                    evicted.append(self._pools.popitem(last=False)[1])
                    self.counters["evictions"] += 1
            for old in evicted:
                self._close_pool(old)
            return pool

    def _start_pool(self, ray: Any, key: str, base: BaseSpec, n: int) -> _Pool:
        root = self.config.resolved_work_dir() / "ray" / key
        start = time.monotonic()
        ids = [f"ray-{key[:8]}-{i}" for i in range(n)]
        config = self._pool_config(n)
        actors = [
            self._actor_cls.remote(wid, base.to_dict(), str(root / wid), config) for wid in ids
        ]
        try:  # the first builds from scratch; the others copy it where they share its node
            first = ray.get(actors[0].warm.remote())
            infos = [first, *ray.get([a.warm.remote(first) for a in actors[1:]])]
        except Exception as exc:
            self._kill(actors)
            raise _unwrap(exc) from None
        pool = _Pool(key, base, actors, ids, time.monotonic() - start, time.monotonic())
        pool.cloned = sum(1 for i in infos if i.get("cloned"))
        return pool

    def _pool_config(self, n: int) -> CESConfig:
        """The config the pool's actors get: ``workers`` is the pool's real size, so each
        worker's dune ``-j`` is its node's cores shared out over the pool (computed on the
        actor's node), never ``[ces] workers``."""
        return dataclasses.replace(self.config, workers=n)

    def _close_pool(self, pool: _Pool) -> None:
        ray = _ray()
        try:
            ray.get([a.close.remote() for a in pool.actors], timeout=60)
        except Exception as exc:
            log.warning("closing CES Ray workers of base %s: %s", pool.key, exc)
        self._kill(pool.actors)

    @staticmethod
    def _kill(actors: Sequence[Any]) -> None:
        ray = _ray()
        for a in actors:
            try:
                ray.kill(a)
            except Exception as exc:  # already dead
                log.debug("ray.kill: %s", exc)

    # -- judging ---------------------------------------------------------------------------

    def evaluate(self, jobs: Sequence[Job]) -> list[Verdict]:
        jobs = list(jobs)
        out: list[Verdict | None] = [None] * len(jobs)
        by_key: dict[str, tuple[BaseSpec, list[int]]] = {}
        resolved: dict[int, BaseSpec] = {}
        for i, job in enumerate(jobs):
            rid = id(job.base)
            if rid not in resolved:
                resolved[rid] = _resolve(job.base)
            base = resolved[rid]
            by_key.setdefault(base.key(), (base, []))[1].append(i)
        with self._lock:
            self._queued += len(jobs)
        try:
            for base, idxs in by_key.values():
                pool = self._pool(base)
                for i, verdict in self._run_on(pool, [jobs[i] for i in idxs], idxs):
                    out[i] = verdict
        finally:
            with self._lock:
                self._queued -= len(jobs)
        return [v for v in out if v is not None]

    def _run_on(self, pool: _Pool, jobs: list[Job], idxs: list[int]) -> list[tuple[int, Verdict]]:
        """Keep every actor busy with one job at a time until all jobs are judged.

        As in the local pool, a job the machine failed is retried once on a fresh worker: an
        ``error`` verdict (or an exception raised inside the worker) on another actor of the
        pool — or, when there is no other, on the same actor after it rebuilt its tree from
        the base —, a job whose actor died on the actor that replaces it. A second failure is
        reported as ``error`` (no reward), flag ``retried``."""
        ray = self._connect()
        todo = [_Task(i, j) for i, j in zip(idxs, jobs, strict=True)]
        todo.reverse()
        free = list(range(len(pool.actors)))
        running: dict[Any, tuple[int, _Task]] = {}  # ref -> (slot, task)
        done: list[tuple[int, Verdict]] = []
        while todo or running:
            while todo and free:
                slot = _pick(free, todo[-1].avoid, busy=bool(running))
                if slot is None:  # a retry waits for an actor other than the one that failed
                    break
                task = todo.pop()
                free.remove(slot)
                job_d = task.job.to_dict()
                job_d["base"] = pool.base.to_dict()
                ref = pool.actors[slot].judge.remote(job_d, task.avoid == slot)
                running[ref] = (slot, task)
            if not running:  # every actor is gone and none could be replaced
                for task in todo:
                    msg = "no live Ray worker left for this base"
                    done.append((task.index, _error(task.job, "", msg)))
                break
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                slot, task = running.pop(ref)
                try:
                    verdict = Verdict.from_dict(ray.get(ref))
                except ray.exceptions.RayActorError as exc:
                    self.counters["actor_failures"] += 1
                    log.warning("CES Ray worker %s died: %s", pool.ids[slot], exc)
                    if self._replace(pool, slot):
                        free.append(slot)
                    verdict = _error(task.job, pool.ids[slot], f"worker died: {exc}")
                    retry_on = None  # the replacement is a fresh worker
                except Exception as exc:  # raised inside the worker: the machine's fault
                    free.append(slot)
                    name = type(_unwrap(exc)).__name__
                    verdict = _error(task.job, pool.ids[slot], f"{name}: {_unwrap(exc)}")
                    retry_on = slot
                else:
                    free.append(slot)
                    retry_on = slot
                if verdict.state == "error" and not task.retried:
                    with self._lock:
                        self.counters["retries"] += 1
                    todo.append(_Task(task.index, task.job, retried=True, avoid=retry_on))
                    continue
                if task.retried:
                    verdict.flags.append("retried")
                with self._lock:
                    self.counters["jobs"] += 1
                    self.counters["errors"] += int(verdict.state == "error")
                    self.counters["rebuilds"] += int("worker-rebuilt" in verdict.flags)
                done.append((task.index, verdict))
        return done

    def _replace(self, pool: _Pool, slot: int) -> bool:
        """Start a fresh actor in place of a dead one (it warms its own tree again)."""
        ray = _ray()
        self._kill([pool.actors[slot]])
        wid = pool.ids[slot]
        root = self.config.resolved_work_dir() / "ray" / pool.key / f"{wid}-r{time.time_ns()}"
        config = self._pool_config(len(pool.actors))
        actor = self._actor_cls.remote(wid, pool.base.to_dict(), str(root), config)
        try:
            ray.get(actor.warm.remote())
        except Exception as exc:
            log.error("CES Ray worker %s could not be replaced: %s", wid, exc)
            self._kill([actor])
            return False
        pool.actors[slot] = actor
        self.counters["replaced"] += 1
        return True

    # -- status and shutdown ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._lock:
            bases = [
                {
                    "key": p.key,
                    "source": p.base.source,
                    "rev": p.base.resolved_rev or p.base.rev,
                    "workers": len(p.actors),
                    "worker_ids": list(p.ids),
                    "warm_s": p.warm_s,
                }
                for p in self._pools.values()
            ]
            return {
                "backend": self.name,
                "address": self.ray_config.address,
                "bases": bases,
                "workers": sum(len(p.actors) for p in self._pools.values()),
                "queue_depth": self._queued,
                "counters": dict(self.counters),
            }

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        if not pools and not self._started_ray:
            return
        ray = _ray()
        if ray.is_initialized():
            for pool in pools:
                self._close_pool(pool)
            shutdown(self._started_ray)
            self._started_ray = False


@dataclass
class _Task:
    """A job of a batch on its way through the pool."""

    index: int  # its place in the batch
    job: Job
    retried: bool = False
    avoid: int | None = None  # the actor slot whose try failed (a retry goes elsewhere)


def _pick(free: list[int], avoid: int | None, *, busy: bool) -> int | None:
    """The free actor slot a task goes to: any but ``avoid``; ``avoid`` itself (rebuilt first)
    only when no other actor is free or busy (none could take it); None: wait."""
    others = [s for s in free if s != avoid]
    if others:
        return others[0]
    if avoid is not None and not busy:
        return avoid
    return None


def _error(job: Job, worker: str, message: str) -> Verdict:
    """A verdict for a job the infrastructure could not judge (not a verdict on the diff)."""
    return Verdict(job_id=job.id, ok=False, furthest=None, worker=worker, error=message)


def _unwrap(exc: BaseException) -> BaseException:
    """The original bactrian error inside a Ray task error, when there is one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    return exc
