"""The local backend's bookkeeping on cheap generic-adapter bases (shell stage commands):
LRU eviction, reuse of warm trees by a later process, rebuilds, status counters, config."""

from __future__ import annotations

from pathlib import Path

import pytest

from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, Job
from bactrian.ces.local import LocalBackend, disk_bases
from bactrian.ces.worker import Worker
from bactrian.errors import ConfigError

from .conftest import small_config

STAGES = {
    "typecheck": "grep -q ok state.txt",
    "build": "mkdir -p _build && cat state.txt > _build/out",
    "test": "test -s _build/out",
}
TO_BAD = "--- a/state.txt\n+++ b/state.txt\n@@ -1 +1 @@\n-ok\n+bad\n"
TO_OK2 = "--- a/state.txt\n+++ b/state.txt\n@@ -1 +1,2 @@\n ok\n+ok again\n"


def plain_base(root: Path, name: str) -> BaseSpec:
    d = root / name
    (d / "_build").mkdir(parents=True)
    (d / "state.txt").write_text("ok\n")
    return BaseSpec(str(d), stages=dict(STAGES), adapter="generic")


def test_lru_eviction_and_status(tmp_path: Path) -> None:
    be = LocalBackend(small_config(tmp_path / "work", workers=1, max_bases=2))
    a, b, c = (plain_base(tmp_path, n) for n in "abc")
    try:
        for spec in (a, b):
            be.warm(spec)
        v = be.evaluate([Job(a, TO_BAD), Job(b, TO_OK2)])
        assert [x.furthest for x in v] == ["parse", "test"]
        be.warm(c)  # b was used last with a, but a's pool is older in LRU order
        sources = [x["source"] for x in be.status()["bases"]]
        assert len(sources) == 2 and str(Path(a.source).resolve()) not in sources
        st = be.status()
        assert st["counters"]["evictions"] == 1 and st["counters"]["jobs"] == 2
        assert st["counters"]["resets"] == 2 and st["queue_depth"] == 0
        assert st["stage_counts"]["typecheck"] == 2
        assert len(disk_bases(tmp_path / "work")) == 2
    finally:
        be.close()


def test_a_later_process_reuses_warm_trees(tmp_path: Path) -> None:
    spec = plain_base(tmp_path, "p")
    cfg = small_config(tmp_path / "work", workers=1)
    first = LocalBackend(cfg)
    first.warm(spec)
    first.close()
    marker = next((tmp_path / "work" / "bases").glob("*/w0/tree/_build")) / "marker"
    marker.write_text("survives reuse\n")  # a fresh tree would not have it
    second = LocalBackend(cfg)
    try:
        [v] = second.evaluate([Job(spec, TO_OK2)])
        assert v.ok and marker.exists()
    finally:
        second.close()


def test_rebuild_restores_a_damaged_worker(tmp_path: Path) -> None:
    spec = plain_base(tmp_path, "r")
    w = Worker("w", spec, tmp_path / "w", small_config(tmp_path / "work"))
    w.warm()
    (w.tree / "state.txt").write_text("damaged\n")
    (w.tree / "junk").mkdir()
    assert not w.verify()
    w.rebuild()
    assert w.verify() and w.counters["rebuilds"] == 1
    v = w.judge(Job(spec, TO_BAD))
    assert v.furthest == "parse" and w.verify()


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="reward_mode"):
        CESConfig(reward_mode="steep")
    with pytest.raises(ConfigError, match="unknown stage"):
        CESConfig(reward_weights={"deploy": 1.0})
    cfg = CESConfig.load(workers=3, timeout_s=9)
    assert cfg.resolved_workers() == 3 and cfg.limits("build").wall_s == 9


def test_warming_gets_its_own_longer_time_limit(tmp_path: Path) -> None:
    spec = plain_base(tmp_path, "slow")
    spec.stages["test"] = "sleep 1.5"
    cfg = small_config(tmp_path / "work", workers=1, timeout_s=0.5, stage_timeouts={})
    be = LocalBackend(cfg)
    try:
        assert be.warm(spec)["workers"] == 1  # the cold run may take longer than a job's stage
        [v] = be.evaluate([Job(spec, TO_OK2)])
        assert v.stage("test").status == "timeout" and v.furthest == "build"  # type: ignore[union-attr]
    finally:
        be.close()


def test_failed_reset_verification_rebuilds_and_flags(tmp_path: Path) -> None:
    spec = plain_base(tmp_path, "v")
    pristine = Path(spec.source)
    w = Worker("w", spec, tmp_path / "w", small_config(tmp_path / "work"), pristine=pristine)
    w.warm()
    # damage the worker's base snapshot: the reset restores wrong content and cannot verify
    (w.base_dir / "state.txt").write_text("damaged snapshot\n")
    v = w.judge(Job(spec, TO_OK2))
    assert v.ok and "worker-rebuilt" in v.flags
    assert w.counters["rebuilds"] == 1 and w.verify()
    assert (w.base_dir / "state.txt").read_text() == "ok\n"  # snapshot repaired from pristine
    v2 = w.judge(Job(spec, TO_BAD))
    assert v2.furthest == "parse" and "worker-rebuilt" not in v2.flags


def test_pristine_tests_never_follow_a_symlink_the_build_planted(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    d = tmp_path / "sym"
    (d / "test").mkdir(parents=True)
    (d / "test" / "check.txt").write_text("ok\n")
    (d / "state.txt").write_text("ok\n")
    stages = {
        "typecheck": "true",
        "build": f"if [ -f attack ]; then rm -rf test && ln -s {victim} test; fi",
        "test": "true",
    }
    spec = BaseSpec(str(d), stages=stages, adapter="generic")
    cfg = small_config(tmp_path / "work", workers=1, edits_tests_policy="pristine")
    w = Worker("w", spec, tmp_path / "w", cfg)
    w.warm()
    diff = (
        "--- /dev/null\n+++ b/attack\n@@ -0,0 +1 @@\n+x\n"
        "--- a/test/check.txt\n+++ b/test/check.txt\n@@ -1 +1 @@\n-ok\n+edited\n"
    )
    v = w.judge(Job(spec, diff))
    assert "edits-tests" in v.flags and v.stage("build").status == "passed"  # type: ignore[union-attr]
    assert list(victim.iterdir()) == []
    assert w.verify()
