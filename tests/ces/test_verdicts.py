"""Verdicts on real OCaml: green, parse error, type error, build (link) error, failing test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, Job, Verdict
from bactrian.ces.worker import compute_reward

from .conftest import Pool
from .project import append, edit, new_file

GREEN = edit("lib/geom.ml", "let double x = 2 * x", "let double x = x + x")
PARSE = edit("lib/geom.ml", "x * x", "x * (x")
TYPE = edit("lib/geom.ml", "x * x", 'x + "a"')
# type-checks (an external is only resolved at link time) but does not link
LINK = edit(
    "bin/main.ml",
    "let () = print_int",
    'external nope : int -> int = "caml_bactrian_no_such_primitive"\n'
    "let () = print_int (nope 1)\nlet () = print_int",
)
FAILING_TEST = edit("lib/shapes.ml", "| Rect (w, h) -> w * h", "| Rect (w, h) -> w + h")


def statuses(v: Verdict) -> dict[str, str]:
    return {s.name: s.status for s in v.stages}


def test_green_diff_passes_every_stage(pool: Pool) -> None:
    v = pool.one(GREEN)
    assert v.ok, v.to_dict()
    assert v.furthest == "test"
    assert statuses(v) == dict.fromkeys(["apply", "parse", "typecheck", "build", "test"], "passed")
    assert v.reward == 1.0
    assert v.tests == {"passed": 3, "failed": 0, "total": 3}
    assert v.diagnostics == []
    assert v.apply is None or v.apply["ok"]


def test_syntax_error_fails_parse_with_a_syntax_diagnostic(pool: Pool) -> None:
    v = pool.one(PARSE)
    assert not v.ok
    assert v.furthest == "apply"
    assert statuses(v) == {"apply": "passed", "parse": "failed"}
    assert v.reward == pytest.approx(0.1)
    assert any(d.file.endswith("lib/geom.ml") and d.kind == "syntax" for d in v.diagnostics)


def test_type_error_fails_typecheck(pool: Pool) -> None:
    v = pool.one(TYPE)
    assert v.furthest == "parse"
    assert statuses(v)["typecheck"] == "failed"
    assert v.reward == pytest.approx(0.2)
    errs = [d for d in v.diagnostics if d.severity.value == "error"]
    assert errs and errs[0].file == "lib/geom.ml" and errs[0].line == 1
    assert "string" in errs[0].message


def test_link_error_fails_build_not_typecheck(pool: Pool) -> None:
    v = pool.one(LINK)
    assert v.furthest == "typecheck", v.to_dict()
    assert statuses(v)["build"] == "failed"
    assert v.reward == pytest.approx(0.5)
    assert "caml_bactrian_no_such_primitive" in v.stage("build").output  # type: ignore[union-attr]


def test_failing_test_fails_test_stage_with_summary(pool: Pool) -> None:
    v = pool.one(FAILING_TEST)
    assert v.furthest == "build"
    assert statuses(v)["test"] == "failed"
    assert v.reward == pytest.approx(0.7)
    assert v.tests == {"passed": 2, "failed": 1, "total": 3}


def test_new_module_is_built_and_removed_again(pool: Pool) -> None:
    diff = new_file("lib/extra.ml", "let triple x = 3 * x\n") + append(
        "lib/shapes.ml", "let triple = Extra.triple\n"
    )
    v = pool.one(diff)
    assert v.ok, v.to_dict()
    # the next job sees the base again: Extra is gone, so using it is a type error
    v2 = pool.one(append("lib/geom.ml", "let t = Extra.triple\n"))
    assert v2.furthest == "parse"
    assert any("Extra" in d.message for d in v2.diagnostics)


def test_verdicts_come_back_in_job_order(pool: Pool) -> None:
    vs = pool.judge(TYPE, GREEN, PARSE, FAILING_TEST)
    assert [v.furthest for v in vs] == ["parse", "test", "apply", "build"]
    assert all(v.worker for v in vs)
    assert pool.backend.status()["counters"]["resets"] >= 4


def test_verdict_round_trips_through_json(pool: Pool) -> None:
    v = pool.one(TYPE)
    assert Verdict.from_dict(v.to_dict()).to_dict() == v.to_dict()


def test_reward_modes() -> None:
    graded = CESConfig()
    assert compute_reward(None, False, graded) == 0.0
    assert compute_reward("typecheck", False, graded) == 0.5
    assert compute_reward("test", True, graded) == 1.0
    binary = CESConfig(reward_mode="binary")
    assert compute_reward("build", False, binary) == 0.0
    assert compute_reward("test", True, binary) == 1.0


def test_lenient_application_only_when_allowed_and_flagged(pool: Pool) -> None:
    # the context line carries trailing blanks the file does not have
    diff = GREEN.replace(" let square x = x * x\n", " let square x = x * x   \n")
    assert diff != GREEN
    strict = pool.one(diff)
    assert strict.furthest is None and "lenient-apply" not in strict.flags
    lenient = pool.one(diff, lenient=True)
    assert lenient.ok and "lenient-apply" in lenient.flags, lenient.to_dict()


def test_job_timeout_bounds_the_whole_job(pool: Pool) -> None:
    loop = append("lib/geom.ml", "let () = while true do () done\n")
    # 9.5 s: room for the build before it on a loaded machine, and under the test stage's own
    # 10 s limit, so the limit the loop hits can only come from the job's budget
    [v] = pool.backend.evaluate([Job(pool.base, loop, timeout_s=9.5)])
    assert v.stage("test") is not None and v.stage("test").status == "timeout"  # type: ignore[union-attr]
    # the stage ran under what was left of the job's 9.5 s, not under its own 10 s
    # (how long the whole job takes: benchmarks/bench_timeouts.py)
    limit = re.search(r"killed after the ([0-9.]+) s wall-clock limit", v.stage("test").output)  # type: ignore[union-attr]
    assert limit is not None and float(limit[1]) <= 9.5


def test_syntax_errors_only_dune_sees_are_parse_failures(pool: Pool) -> None:
    v = pool.one(edit("lib/dune", "(library (name shapes))", "(library (name shapes)"))
    assert v.furthest == "apply" and {s.name: s.status for s in v.stages}["parse"] == "failed"
    assert v.diagnostics and v.diagnostics[0].file == "lib/dune"


def test_pristine_policy_runs_the_base_tests(tmp_path: Path) -> None:
    from bactrian.ces.local import LocalBackend

    from .conftest import small_config
    from .project import write_project

    project = write_project(tmp_path / "project")
    be = LocalBackend(small_config(tmp_path / "work", workers=1, edits_tests_policy="pristine"))
    base = BaseSpec(str(project))
    cheat = FAILING_TEST + edit("test/test_shapes.ml", '"rect" 6', '"rect" 5')
    extra = GREEN + new_file("test/more.ml", "let x = 1\n")
    try:
        v_cheat, v_extra = be.evaluate([Job(base, cheat), Job(base, extra)])
    finally:
        be.close()
    assert "edits-tests" in v_cheat.flags and v_cheat.furthest == "build"
    assert v_cheat.tests == {"passed": 2, "failed": 1, "total": 3}  # the base's expectation
    assert "edits-tests" in v_extra.flags and v_extra.ok
