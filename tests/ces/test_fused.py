"""typecheck + build in one dune run (``[ces] fuse_stages``, on by default) gives exactly the
verdicts of the stages run one by one, on real dune and bubblewrap: a fused run that does not
pass cleanly is thrown away with its layer and the job judged again, staged, on a fresh one.
The proof runs both modes side by side on the stage tests, the policy tests, the free-reward
corpus and the whole adversarial corpus, and compares every verdict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bactrian.ces.adapters import get_adapter
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, Job, Verdict
from bactrian.ces.fused import fused_command
from bactrian.ces.local import LocalBackend

from . import bases
from . import test_adversarial as adversarial
from . import test_free_rewards as free_rewards
from .conftest import needs_root, small_config
from .project import edit, write_project
from .test_test_policies import TRIPLE_CODE, TRIPLE_TEST
from .test_verdicts import FAILING_TEST, GREEN, LINK, PARSE, TYPE

# a build rule that prints while the build passes (in the build stage only: @check does not
# build its target)
WARNS = edit(
    "lib/dune",
    "(library (name shapes))",
    "(library (name shapes))\n"
    '(rule (targets note.txt) (action (progn (system "echo take care >&2") '
    "(write-file note.txt x))))",
)

STAGE_DIFFS = [GREEN, TYPE, PARSE, LINK, FAILING_TEST, WARNS, TRIPLE_CODE + TRIPLE_TEST, GREEN]


def test_fuse_stages_is_on_by_default() -> None:
    assert CESConfig().fuse_stages is True


def _both(config_dir: Path, **kw: object) -> dict[bool, LocalBackend]:
    return {
        fuse: LocalBackend(small_config(config_dir / f"work-{fuse}", fuse_stages=fuse, **kw))
        for fuse in (True, False)
    }


def _judge_both(
    pools: dict[bool, LocalBackend], base: BaseSpec, diffs: list[str]
) -> tuple[list[Verdict], list[Verdict]]:
    fused = pools[True].evaluate([Job(base, d) for d in diffs])
    staged = pools[False].evaluate([Job(base, d) for d in diffs])
    return fused, staged


def _same(fused: list[Verdict], staged: list[Verdict], names: list[str]) -> None:
    for name, f, s in zip(names, fused, staged, strict=True):
        assert f.fingerprint() == s.fingerprint(), (name, f.to_dict(), s.to_dict())


def test_fused_and_staged_verdicts_are_the_same(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    base = BaseSpec(str(project))
    pools = _both(tmp_path, workers=1)
    try:
        fused, staged = _judge_both(pools, base, STAGE_DIFFS)
        counters = pools[True]._pools[next(iter(pools[True]._pools))].workers[0].counters
    finally:
        for be in pools.values():
            be.close()
    _same(fused, staged, [str(i) for i in range(len(STAGE_DIFFS))])
    assert [v.furthest for v in fused] == [
        "test",
        "parse",
        "apply",
        "typecheck",
        "build",
        "test",
        "test",
        "test",
    ]
    # a green job ran typecheck and build as one dune command; the staged one as two
    for v in (fused[0], fused[4], fused[6], fused[7]):
        tc, build = v.stage("typecheck"), v.stage("build")
        assert tc is not None and build is not None
        assert tc.command == build.command and "@check @@default" in (build.command or "")
        assert tc.duration_s == 0.0 and tc.status == "passed"
    tc, build = staged[0].stage("typecheck"), staged[0].stage("build")
    assert tc is not None and build is not None and tc.command != build.command
    # a failing build, and a passing one that printed something, were judged again staged, on
    # a fresh layer: their stages, commands and output are the staged ones
    for i in (3, 5):
        for stage in ("typecheck", "build"):
            f, s = fused[i].stage(stage), staged[i].stage(stage)
            assert f is not None and s is not None
            assert (f.status, f.command, f.output) == (s.status, s.command, s.output), stage
    assert "take care" in (fused[5].stage("build").output or "")  # type: ignore[union-attr]
    assert counters["fused"] == 4 and counters["unfused"] == 3  # type, link, warning


@pytest.fixture(scope="module")
def corpus_pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("fused-corpus")
    project = write_project(root / "project")
    pools = _both(root)
    try:
        yield project, pools
    finally:
        for be in pools.values():
            be.close()


@needs_root
@pytest.mark.slow
def test_the_adversarial_corpus_gets_the_same_verdicts_fused(
    corpus_pools: tuple[Path, dict[bool, LocalBackend]],
) -> None:
    project, pools = corpus_pools
    base = BaseSpec(str(project))
    names = list(adversarial.CASES)
    diffs = [adversarial.CASES[n][0](project) for n in names]
    fused, staged = _judge_both(pools, base, diffs)
    _same(fused, staged, names)
    for name, v in zip(names, fused, strict=True):  # and each is the verdict the suite wants
        adversarial.CASES[name][1](v)


@pytest.mark.slow
def test_the_free_reward_corpus_gets_the_same_verdicts_fused(tmp_path: Path) -> None:
    by_base: dict[str, list[str]] = {}
    for name, (base_name, _, _) in free_rewards.CASES.items():
        by_base.setdefault(base_name, []).append(name)
    for base_name, names in by_base.items():
        files, stages = free_rewards.BASES[base_name]
        project = bases.write(tmp_path / base_name, files)
        base = BaseSpec(str(project), stages=dict(stages))
        pools = _both(tmp_path / f"w-{base_name}", workers=1)
        try:
            diffs = [free_rewards.CASES[n][1]() for n in names]
            fused, staged = _judge_both(pools, base, diffs)
        finally:
            for be in pools.values():
                be.close()
        _same(fused, staged, names)
        for name, v in zip(names, fused, strict=True):
            free_rewards.CASES[name][2](v)


def test_overrides_fuse_only_when_both_are_plain_dune_builds_with_the_same_options() -> None:
    adapter = get_adapter("dune", Path("."))
    tc = "dune build --root . --only-packages eqaf @lib/check 2>&1"
    build = "dune build --root . --only-packages eqaf @lib/all 2>&1"
    assert (
        fused_command(adapter, {"typecheck": tc, "build": build})
        == "dune build --root . --only-packages eqaf @lib/check @lib/all 2>&1"
    )
    assert fused_command(adapter, {"build": build}) is None  # one given: as given
    for other in (
        "make 2>&1",
        "dune build --root . @lib/all; rm -rf x 2>&1",
        "dune build --root . lib/x.exe 2>&1",  # a file target
        "dune build --profile release --root . @lib/all 2>&1",  # other options
        "dune build --root . @lib/all",  # its output not captured
    ):
        assert fused_command(adapter, {"typecheck": tc, "build": other}) is None, other
