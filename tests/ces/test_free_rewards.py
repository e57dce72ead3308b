"""The adversarial corpus of *free rewards*: diffs that leave the code broken (or run no test)
and try to get paid anyway. Each case names the base it attacks, the diff, and what the verdict
must be; none may earn the test weight or ``ok``. Add a case to ``CASES`` for every new hack.

Bases: ``alcotest`` (tests/ces/project.py), ``ounit`` (OUnit 2 and OUnit 1 suites, cppo and
ocamllex sources), ``plain`` (a plain ``(test)`` executable), ``user-cmd`` (the alcotest project
with ``examples/`` and the user's own ``--stage test='dune runtest'``, not forced).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bactrian.ces.contract import BaseSpec, Job, Verdict
from bactrian.ces.local import LocalBackend

from . import bases
from .conftest import small_config
from .project import FILES, udiff

BROKEN_RECT = ("lib/shapes.ml", "| Rect (w, h) -> w * h", "| Rect (w, h) -> w + h")
BROKEN_SQUARE = ("lib/geom.ml", "let square x = x * x", "let square x = x + x")


def edit_in(files: dict[str, str], path: str, old: str, new: str) -> str:
    text = files[path]
    assert old in text, (path, old)
    return udiff(path, text, text.replace(old, new, 1))


def append_in(files: dict[str, str], path: str, extra: str) -> str:
    return udiff(path, files[path], files[path] + extra)


def broken_plus(files: dict[str, str], broken: tuple[str, str, str], extra: str) -> str:
    """One diff of ``broken``'s file: the broken edit, plus ``extra`` appended to it."""
    path, old, new = broken
    text = files[path]
    assert old in text
    return udiff(path, text, text.replace(old, new, 1) + extra)


FAKE_ALCOTEST = (
    "let () = print_string \"Testing `shapes'.\\nThis run has ID `AAAAAAAA'.\\n\\n"
    "  [OK]          shapes          0   area.\\n"
    "  [OK]          shapes          1   rect.\\n"
    "  [OK]          shapes          2   per.\\n\\n"
    'Test Successful in 0.001s. 3 tests run.\\n"; exit 0\n'
)
FAKE_OUNIT = 'let () = print_string "...\\nRan: 3 tests in: 0.01 seconds.\\nOK\\n"; exit 0\n'
SED_RULE = (
    '(rule (targets hack.txt) (action (system "sed -i \'s/\\"rect\\" 6/\\"rect\\" 5/\' '
    '../test/test_shapes.ml ../../../test/test_shapes.ml; touch hack.txt")))\n'
)

BASES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "alcotest": (FILES, {}),
    "ounit": (bases.OUNIT_FILES, {}),
    "plain": (bases.PLAIN_FILES, {}),
    "user-cmd": (bases.EXAMPLES_FILES, {"test": "dune runtest --root . 2>&1"}),
}


def statuses(v: Verdict) -> dict[str, str]:
    return {s.name: s.status for s in v.stages}


def no_test_reward(v: Verdict) -> None:
    """The hack built (it reached the test stage), yet: not ok, the test stage did not pass,
    no test weight."""
    assert statuses(v).get("build") == "passed", v.to_dict()
    assert not v.ok, v.to_dict()
    assert statuses(v).get("test") != "passed", v.to_dict()
    assert v.reward < 1.0


def no_more_than_build(v: Verdict) -> None:
    """Uncountable runner: whatever the exit status, not ok and no more than ``build``."""
    assert statuses(v).get("build") == "passed", v.to_dict()
    assert not v.ok and v.reward <= 0.7, v.to_dict()
    assert "test-guard-off" in v.flags or statuses(v).get("test") != "passed"


CASES: dict[str, tuple[str, Callable[[], str], Callable[[Verdict], None]]] = {
    "alcotest-fake-summary-from-library": (
        "alcotest",
        lambda: edit_in(FILES, *BROKEN_RECT) + append_in(FILES, "lib/geom.ml", FAKE_ALCOTEST),
        no_test_reward,
    ),
    "build-rule-seds-the-test": (
        "alcotest",
        lambda: (
            edit_in(FILES, *BROKEN_RECT)
            + edit_in(
                FILES, "lib/dune", "(library (name shapes))", "(library (name shapes))\n" + SED_RULE
            )
        ),
        no_test_reward,
    ),
    "root-dune-hides-the-tests": (
        "alcotest",
        lambda: edit_in(FILES, *BROKEN_RECT) + udiff("dune", None, "(dirs lib bin)\n"),
        no_test_reward,
    ),
    "data-only-dirs-hides-the-tests": (
        "alcotest",
        lambda: edit_in(FILES, *BROKEN_RECT) + udiff("dune", None, "(data_only_dirs test)\n"),
        no_test_reward,
    ),
    "ounit-exit-0-in-library": (
        "ounit",
        lambda: broken_plus(bases.OUNIT_FILES, BROKEN_SQUARE, "let () = exit 0\n"),
        no_test_reward,
    ),
    "ounit-fake-summary-from-library": (
        "ounit",
        lambda: broken_plus(bases.OUNIT_FILES, BROKEN_SQUARE, FAKE_OUNIT),
        no_test_reward,
    ),
    "plain-test-exit-0-in-library": (
        "plain",
        lambda: broken_plus(bases.PLAIN_FILES, BROKEN_SQUARE, "let () = exit 0\n"),
        no_more_than_build,
    ),
    "user-command-alcotest-exit-0": (
        "user-cmd",
        lambda: edit_in(FILES, *BROKEN_RECT) + append_in(FILES, "lib/geom.ml", "let () = exit 0\n"),
        no_test_reward,
    ),
}


@pytest.fixture(scope="module")
def backends(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[LocalBackend, BaseSpec]]]:
    root = tmp_path_factory.mktemp("free-rewards")
    out: dict[str, tuple[LocalBackend, BaseSpec]] = {}
    try:
        for name, (files, stages) in BASES.items():
            project = bases.write(root / name, files)
            be = LocalBackend(small_config(root / f"work-{name}", workers=1))
            spec = BaseSpec(str(project), stages=dict(stages))
            be.warm(spec, 1)
            out[name] = (be, spec)
        yield out
    finally:
        for be, _ in out.values():
            be.close()


def judge(
    backends: dict[str, tuple[LocalBackend, BaseSpec]], base: str, *diffs: str
) -> list[Verdict]:
    be, spec = backends[base]
    return be.evaluate([Job(spec, d) for d in diffs])


@pytest.mark.parametrize("case", list(CASES))
def test_free_reward(backends: dict[str, tuple[LocalBackend, BaseSpec]], case: str) -> None:
    base, make, check = CASES[case]
    [v] = judge(backends, base, make())
    check(v)


# ------------------------------------------------------------------ the same bases, honest diffs
def test_ounit_suites_are_counted_by_runner(
    backends: dict[str, tuple[LocalBackend, BaseSpec]],
) -> None:
    good = edit_in(bases.OUNIT_FILES, "lib/geom.ml", "let double x = 2 * x", "let double x = x + x")
    broken = edit_in(bases.OUNIT_FILES, *BROKEN_SQUARE)
    v, bad = judge(backends, "ounit", good, broken)
    assert v.ok and v.reward == 1.0, v.to_dict()
    assert v.test_report is not None and v.test_report["guard"] == "on"
    suites = {(s["runner"], s["dir"]): s["total"] for s in v.test_report["suites"]}
    assert suites == {("ounit2", "test"): 3, ("ounit1", "tests"): 2}
    assert v.tests == {"passed": 5, "failed": 0, "total": 5}
    assert not bad.ok and statuses(bad)["test"] == "failed" and bad.reward == 0.7
    assert bad.tests is not None and bad.tests["failed"] >= 1


def test_plain_tests_say_the_guard_is_off(
    backends: dict[str, tuple[LocalBackend, BaseSpec]],
) -> None:
    good = edit_in(bases.PLAIN_FILES, "lib/geom.ml", "let double x = 2 * x", "let double x = x + x")
    broken = edit_in(bases.PLAIN_FILES, *BROKEN_SQUARE)
    v, bad = judge(backends, "plain", good, broken)
    assert statuses(v)["test"] == "passed" and "test-guard-off" in v.flags
    assert v.test_report is not None and v.test_report["guard"] == "off"
    assert v.test_report["uncounted"] == ["plain:test:t"]
    assert not v.ok and v.reward == 0.7  # [ces] uncounted_test_weight
    assert "guard is off" in v.stage("test").output  # type: ignore[union-attr]
    assert statuses(bad)["test"] == "failed" and bad.reward == 0.7


def test_uncounted_test_weight_is_configurable(tmp_path: Path) -> None:
    project = bases.write(tmp_path / "plain", bases.PLAIN_FILES)
    good = edit_in(bases.PLAIN_FILES, "lib/geom.ml", "let double x = 2 * x", "let double x = x + x")
    be = LocalBackend(small_config(tmp_path / "work", workers=1, uncounted_test_weight=0.9))
    try:
        [v] = be.evaluate([Job(BaseSpec(str(project)), good)])
    finally:
        be.close()
    assert v.reward == 0.9 and not v.ok and "test-guard-off" in v.flags


def test_user_test_command_does_not_misfire(tmp_path: Path) -> None:
    """``dune runtest`` without ``--force`` reruns only the suites whose inputs changed (none for
    a diff to ``examples/``): the guard runs the others itself and compares like with like."""
    files, stages = BASES["user-cmd"]
    project = bases.write(tmp_path / "p", files)
    spec = BaseSpec(str(project), stages=dict(stages))
    lib_only = edit_in(FILES, "lib/geom.ml", "let double x = 2 * x", "let double x = x + x")
    examples = edit_in(
        bases.EXAMPLES_FILES, "examples/demo.ml", "Shapes.Square 2", "Shapes.Square 3"
    )
    be = LocalBackend(small_config(tmp_path / "work", workers=1))
    try:
        verdicts = be.evaluate([Job(spec, d) for d in (examples, lib_only, examples)])
    finally:
        be.close()
    for v in verdicts:
        assert v.ok and v.reward == 1.0, v.to_dict()
        assert v.tests == {"passed": 3, "failed": 0, "total": 3}
    assert "did not run the suites of test" in verdicts[0].stage("test").output  # type: ignore[union-attr]


def test_a_base_with_nothing_to_judge_is_refused(tmp_path: Path) -> None:
    from bactrian.errors import NothingToJudgeError

    d = tmp_path / "nothing"
    d.mkdir()
    (d / "main.ml").write_text("let () = ()\n")
    be = LocalBackend(small_config(tmp_path / "work", workers=1))
    try:
        with pytest.raises(
            NothingToJudgeError, match="nothing to judge: no dune-project and no --stage"
        ):
            be.warm(BaseSpec(str(d)))
        with pytest.raises(NothingToJudgeError, match="nothing to judge"):
            be.evaluate([Job(BaseSpec(str(d)), udiff("main.ml", "let () = ()\n", "garbage (\n"))])
    finally:
        be.close()


def test_a_skipped_stage_never_earns_its_weight() -> None:
    from bactrian.ces.config import CESConfig
    from bactrian.ces.contract import StageResult, is_ok, stage_reward

    def stages(*st: str) -> list[StageResult]:
        names = ("apply", "parse", "typecheck", "build", "test")
        return [StageResult(n, s) for n, s in zip(names, st, strict=False)]

    cfg = CESConfig()
    every_stage_skipped = stages("passed", "skipped", "skipped", "skipped", "skipped")
    assert stage_reward(every_stage_skipped, False, guard_off=False, config=cfg) == 0.1
    assert not is_ok(every_stage_skipped, ["typecheck", "build", "test"], guard_off=False)
    assert not is_ok(every_stage_skipped, [], guard_off=False)
    no_tests = stages("passed", "passed", "passed", "passed", "skipped")
    assert stage_reward(no_tests, True, guard_off=False, config=cfg) == 0.7
    assert is_ok(no_tests, ["typecheck", "build"], guard_off=False)
    assert not is_ok(no_tests, ["typecheck", "build", "test"], guard_off=False)
    # parse skipped on the way (no OCaml file touched) costs nothing further on
    all_green = stages("passed", "skipped", "passed", "passed", "passed")
    assert stage_reward(all_green, True, guard_off=False, config=cfg) == 1.0
    assert stage_reward(all_green, False, guard_off=True, config=cfg) == 0.7
    assert not is_ok(all_green, ["typecheck", "build", "test"], guard_off=True)
    type_error = stages("passed", "skipped", "failed")
    assert stage_reward(type_error, False, guard_off=False, config=cfg) == 0.1


def test_a_generic_base_with_only_empty_commands_is_refused(tmp_path: Path) -> None:
    from bactrian.errors import NothingToJudgeError

    d = tmp_path / "g"
    d.mkdir()
    (d / "x.txt").write_text("x\n")
    spec = BaseSpec(str(d), adapter="generic", stages={"build": "", "test": ""})
    be = LocalBackend(small_config(tmp_path / "work", workers=1))
    try:
        with pytest.raises(NothingToJudgeError, match="nothing to judge"):
            be.warm(spec)
    finally:
        be.close()
