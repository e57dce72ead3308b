"""The Ray backend passes the same verdict tests as the local pool, on a local Ray: one Ray
session for the module (2 CPUs), one warm base with 2 actors."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from bactrian.ces.backends import BACKENDS
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, Job
from bactrian.rayutil import ray_module

from .project import write_project
from .test_verdicts import FAILING_TEST, GREEN, LINK, PARSE, TYPE

# a missing Ray fails the run with "install bactrian[ray]" (never a skip)
ray = ray_module()

pytestmark = pytest.mark.slow

NOT_APPLYING = (
    "diff --git a/lib/geom.ml b/lib/geom.ml\n--- a/lib/geom.ml\n+++ b/lib/geom.ml\n"
    "@@ -1,1 +1,1 @@\n-let nothing_like_this = 0\n+let x = 1\n"
)


@pytest.fixture(scope="module")
def ray_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from bactrian.ces.ray_backend import RayBackend

    ours = not ray.is_initialized()  # another module's Ray session is reused, not stopped
    if ours:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=96 * 1024 * 1024)
    config = CESConfig(workers=2, work_dir=tmp_path_factory.mktemp("ces-ray-work"))
    backend = RayBackend(config)
    try:
        yield backend
    finally:
        backend.close()
        if ours:
            ray.shutdown()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseSpec:
    return BaseSpec(str(write_project(tmp_path_factory.mktemp("shapes"))))


def test_ray_is_a_registered_backend() -> None:
    assert "ray" in BACKENDS and "local" in BACKENDS


def test_warm_starts_two_actors_with_green_trees(ray_backend: Any, base: BaseSpec) -> None:
    info = ray_backend.warm(base, workers=2)
    assert info["workers"] == 2
    assert info["cloned"] == 1  # one node: the second actor copies the first's warm tree
    st = ray_backend.status()
    assert st["backend"] == "ray"
    assert st["bases"][0]["key"] == info["key"]
    assert st["workers"] == 2


def test_verdicts_match_the_local_backend_and_keep_order(ray_backend: Any, base: BaseSpec) -> None:
    diffs = [GREEN, PARSE, TYPE, LINK, FAILING_TEST, NOT_APPLYING, GREEN]
    verdicts = ray_backend.evaluate([Job(base=base, diff=d) for d in diffs])
    assert [v.furthest for v in verdicts] == [
        "test",
        "apply",
        "parse",
        "typecheck",
        "build",
        None,
        "test",
    ], [v.to_dict() for v in verdicts]
    assert [v.ok for v in verdicts] == [True, False, False, False, False, False, True]
    green, parse, typed, link, failing = verdicts[:5]
    assert [v.reward for v in verdicts[:5]] == pytest.approx([1.0, 0.1, 0.2, 0.5, 0.7])
    assert green.tests == {"passed": 3, "failed": 0, "total": 3}
    assert any(d.file.endswith("lib/geom.ml") and d.kind == "syntax" for d in parse.diagnostics)
    assert any("string" in d.message for d in typed.diagnostics), typed.diagnostics
    assert "caml_bactrian_no_such_primitive" in link.stage("build").output  # type: ignore[union-attr]
    assert failing.tests == {"passed": 2, "failed": 1, "total": 3}
    assert {v.worker for v in verdicts} <= set(ray_backend.status()["bases"][0]["worker_ids"])
    assert len({v.worker for v in verdicts}) == 2, "jobs should spread over both actors"
    assert all(v.error is None for v in verdicts)


def test_each_job_sees_the_base_not_the_previous_diff(ray_backend: Any, base: BaseSpec) -> None:
    # A type error, then green diffs, several times on each actor: resets must hold.
    diffs = [TYPE, GREEN, TYPE, GREEN, GREEN, FAILING_TEST, GREEN]
    verdicts = ray_backend.evaluate([Job(base=base, diff=d) for d in diffs])
    assert [v.furthest for v in verdicts] == [
        "parse",
        "test",
        "parse",
        "test",
        "test",
        "build",
        "test",
    ]
    assert ray_backend.status()["counters"]["actor_failures"] == 0


def test_a_dead_actor_is_replaced_and_its_job_retried(ray_backend: Any, base: BaseSpec) -> None:
    pool = next(iter(ray_backend._pools.values()))  # fault injection: kill one warm actor
    ray.kill(pool.actors[0])
    before = ray_backend.status()["counters"]
    verdicts = ray_backend.evaluate([Job(base=base, diff=d) for d in (GREEN, TYPE, GREEN)])
    assert [v.furthest for v in verdicts] == ["test", "parse", "test"]
    assert all(v.error is None for v in verdicts)
    after = ray_backend.status()["counters"]
    assert after["actor_failures"] == before["actor_failures"] + 1
    assert after["replaced"] == before["replaced"] + 1
    assert ray_backend.status()["workers"] == 2


def _trees(ray_backend: Any) -> list[str]:
    pool = next(iter(ray_backend._pools.values()))
    return [info["tree"] for info in ray.get([a.info.remote() for a in pool.actors])]


def test_an_error_verdict_is_retried_once_on_another_actor(
    ray_backend: Any, base: BaseSpec
) -> None:
    # the machine's fault on one actor (its warm tree vanishes): the job's layer cannot be
    # mounted there, so the job is retried on the other actor and judged — not charged
    trees = _trees(ray_backend)
    before = ray_backend.status()["counters"]
    subprocess.run(["rm", "-rf", trees[0]], check=True)
    [v] = ray_backend.evaluate([Job(base=base, diff=GREEN)])
    assert v.ok and v.reward == 1.0 and "retried" in v.flags, v.to_dict()
    pool = next(iter(ray_backend._pools.values()))
    assert v.worker == pool.ids[1]
    after = ray_backend.status()["counters"]
    assert after["retries"] == before["retries"] + 1 and after["errors"] == before["errors"]
    # the failed actor rebuilt its tree after the job: both judge again
    again = ray_backend.evaluate([Job(base=base, diff=d) for d in (GREEN, TYPE, GREEN, TYPE)])
    assert [x.furthest for x in again] == ["test", "parse", "test", "parse"]
    assert all(x.error is None and "retried" not in x.flags for x in again)


def test_a_second_error_is_an_error_verdict_with_no_reward(
    ray_backend: Any, base: BaseSpec
) -> None:
    before = ray_backend.status()["counters"]
    for tree in _trees(ray_backend):  # the fault on every actor: the retry fails too
        subprocess.run(["rm", "-rf", tree], check=True)
    [v] = ray_backend.evaluate([Job(base=base, diff=GREEN)])
    assert v.state == "error" and v.reward is None and not v.ok, v.to_dict()
    assert "retried" in v.flags and v.error
    after = ray_backend.status()["counters"]
    assert after["retries"] == before["retries"] + 1
    assert after["errors"] == before["errors"] + 1
    [ok] = ray_backend.evaluate([Job(base=base, diff=GREEN)])  # both rebuilt themselves
    assert ok.ok and ok.error is None, ok.to_dict()


def test_with_one_actor_the_retry_runs_on_it_rebuilt(
    ray_backend: Any, base: BaseSpec, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from bactrian.ces.ray_backend import RayBackend

    ray_backend.close()  # the module's Ray has 2 CPUs: free them for this pool's actor
    single = RayBackend(CESConfig(workers=1, work_dir=tmp_path_factory.mktemp("ces-ray-one")))
    try:
        single.warm(base, workers=1)
        [tree] = _trees(single)
        subprocess.run(["rm", "-rf", tree], check=True)
        [v] = single.evaluate([Job(base=base, diff=GREEN)])
        assert v.ok and v.reward == 1.0 and "retried" in v.flags, v.to_dict()
        assert single.status()["counters"]["retries"] == 1
    finally:
        single.close()  # its actors only: the module's Ray session is not its own
