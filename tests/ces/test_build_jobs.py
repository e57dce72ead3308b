"""Each worker's dune gets cores ÷ workers jobs, so two workers on two cores do not fight."""

from __future__ import annotations

import os
from pathlib import Path

from bactrian.ces.adapters import get_adapter
from bactrian.ces.config import CESConfig


def test_build_jobs_split_the_cores_between_workers(tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    assert CESConfig(workers=1).resolved_build_jobs() == cores
    assert CESConfig(workers=cores).resolved_build_jobs() == 1
    assert CESConfig(workers=cores * 4).resolved_build_jobs() == 1
    assert CESConfig(workers=1, build_jobs=3).resolved_build_jobs() == 3


def test_dune_commands_carry_the_jobs_and_overrides_win(tmp_path: Path) -> None:
    (tmp_path / "dune-project").write_text("(lang dune 2.9)\n")
    adapter = get_adapter("auto", tmp_path, jobs=1)
    assert adapter.command("build", [], {}) == "dune build -j 1 --root . 2>&1"
    assert adapter.command("test", [], {}) == "dune runtest -j 1 --root . --force 2>&1"
    assert adapter.command("build", [], {"build": "dune build @install"}) == "dune build @install"
    plain = get_adapter("dune", tmp_path)
    assert plain.command("typecheck", [], {}) == "dune build --root . @check 2>&1"


def test_each_dune_gets_its_share_for_the_pools_real_size(tmp_path: Path) -> None:
    """[ces] workers says 1; pools of 1, 2 and 4 workers each run dune with cores // size."""
    from bactrian.ces.contract import BaseSpec, Job
    from bactrian.ces.local import LocalBackend

    from .conftest import small_config
    from .project import edit, write_project

    cores = os.cpu_count() or 1
    project = write_project(tmp_path / "project")
    backend = LocalBackend(small_config(tmp_path / "work", workers=1))
    base = BaseSpec(str(project))
    diff = edit("lib/geom.ml", "let double x = 2 * x", "let double x = x + x")
    try:
        for size in (1, 2, 4):
            backend.warm(base, size)
            want = max(1, cores // size)
            pool = next(iter(backend._pools.values()))
            assert len(pool.workers) == size
            for w in pool.workers:
                assert w.config.resolved_build_jobs() == want
                assert w.adapter is not None
                assert f"-j {want} " in (w.adapter.command("build", [], {}) or "")
            verdicts = backend.evaluate([Job(base, diff) for _ in range(size)])
            for v in verdicts:
                assert v.ok, v.to_dict()
                for stage in ("typecheck", "build", "test"):
                    res = v.stage(stage)
                    assert res is not None and res.command is not None
                    assert res.command.startswith("dune ") and f" -j {want} " in res.command
    finally:
        backend.close()


def test_ray_actors_get_the_pools_size_not_the_configured_workers() -> None:
    from bactrian.ces.ray_backend import RayBackend

    cores = os.cpu_count() or 1
    backend = RayBackend(CESConfig(workers=1))
    for size in (1, 2, 4):
        assert backend._pool_config(size).resolved_build_jobs() == max(1, cores // size)
