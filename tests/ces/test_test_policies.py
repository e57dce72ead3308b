"""What the test stage runs for a diff that writes tests (``edits_tests_policy``): by default the
diff's tests *and* the base's, both against the diff's code."""

from __future__ import annotations

from pathlib import Path

import pytest

from bactrian.ces.contract import BaseSpec, Job, Verdict
from bactrian.ces.local import LocalBackend

from .conftest import Pool, small_config
from .project import FILES, append, edit, udiff, write_project

TEST = "test/test_shapes.ml"
CASES_END = 'Alcotest.test_case "per" `Quick t_per ]'


def with_case(name: str, body: str, text: str = FILES[TEST]) -> str:
    """``text`` with one more alcotest case ``name`` (a function of unit) in the suite."""
    text = text.replace("let () =\n", f"let t_{name} () = {body}\nlet () =\n", 1)
    return text.replace(
        CASES_END,
        f'Alcotest.test_case "per" `Quick t_per;\n'
        f'                   Alcotest.test_case "{name}" `Quick t_{name} ]',
    )


TRIPLE_CODE = append("lib/shapes.ml", "\nlet triple x = 3 * x\n")
TRIPLE_TEST = udiff(
    TEST,
    FILES[TEST],
    with_case("triple", 'Alcotest.(check int) "triple" 9 (Shapes.triple 3)'),
)


def sources(v: Verdict) -> list[tuple[str, int]]:
    assert v.test_report is not None
    return [(s["source"], s["total"]) for s in v.test_report["suites"]]


def test_a_commit_that_changes_code_and_extends_its_tests_is_green(pool: Pool) -> None:
    v = pool.one(TRIPLE_CODE + TRIPLE_TEST)
    assert v.ok and v.reward == 1.0, v.to_dict()
    assert "edits-tests" in v.flags
    assert v.test_report is not None and v.test_report["policy"] == "both"
    # the diff's extended suite ran (4 cases), then the base's own file against the diff's code
    assert sources(v) == [("diff", 4), ("base", 3)]
    out = v.stage("test").output  # type: ignore[union-attr]
    assert out.index("[bactrian: the diff's tests]") < out.index("[bactrian: the base's tests]")


def test_deleting_a_base_test_fails(pool: Pool) -> None:
    suite_gone = udiff(TEST, FILES[TEST], None) + udiff("test/dune", FILES["test/dune"], None)
    v, file_gone = pool.judge(
        TRIPLE_CODE + suite_gone, TRIPLE_CODE + udiff(TEST, FILES[TEST], None)
    )
    assert not v.ok and v.stage("test").status == "failed", v.to_dict()  # type: ignore[union-attr]
    out = v.stage("test").output  # type: ignore[union-attr]
    assert "deletes base test files" in out and "test/test_shapes.ml" in out
    assert v.reward == 0.7
    assert not file_gone.ok and file_gone.reward < 1.0  # test/dune names it: build fails


def test_dropping_a_base_test_case_fails(pool: Pool) -> None:
    fewer = FILES[TEST].replace('Alcotest.test_case "rect" `Quick t_rect;\n                   ', "")
    assert fewer != FILES[TEST]
    v = pool.one(TRIPLE_CODE + udiff(TEST, FILES[TEST], fewer))
    assert not v.ok and v.stage("test").status == "failed"  # type: ignore[union-attr]
    assert "ran 2 tests where the base ran 3" in v.stage("test").output  # type: ignore[union-attr]


def test_the_diffs_new_tests_must_pass(pool: Pool) -> None:
    wrong = udiff(
        TEST,
        FILES[TEST],
        with_case("triple", 'Alcotest.(check int) "triple" 10 (Shapes.triple 3)'),
    )
    v = pool.one(TRIPLE_CODE + wrong)
    assert not v.ok and v.stage("test").status == "failed", v.to_dict()  # type: ignore[union-attr]
    assert sources(v) == [("diff", 4)]  # the base's run never started
    assert v.tests == {"passed": 3, "failed": 1, "total": 4}


def test_tests_rewritten_to_pass_broken_code_fail_on_the_base_tests(pool: Pool) -> None:
    broken = edit("lib/shapes.ml", "| Rect (w, h) -> w * h", "| Rect (w, h) -> w + h")
    v = pool.one(broken + edit(TEST, '"rect" 6', '"rect" 5'))
    assert not v.ok and v.stage("test").status == "failed"  # type: ignore[union-attr]
    assert sources(v) == [("diff", 3), ("base", 3)]  # the diff's version passed; the base's not
    assert v.tests == {"passed": 2, "failed": 1, "total": 3}


@pytest.mark.parametrize("policy", ["pristine", "trust", "fail"])
def test_named_policies(tmp_path: Path, policy: str) -> None:
    project = write_project(tmp_path / "p")
    be = LocalBackend(small_config(tmp_path / "work", workers=1, edits_tests_policy=policy))
    try:
        [v] = be.evaluate([Job(BaseSpec(str(project)), TRIPLE_CODE + TRIPLE_TEST)])
    finally:
        be.close()
    assert v.test_report is not None and v.test_report["policy"] == policy
    if policy == "fail":
        assert not v.ok and "cannot pass" in v.stage("test").output  # type: ignore[union-attr]
        assert v.test_report["suites"] == []
    elif policy == "pristine":
        assert v.ok and sources(v) == [("base", 3)]
    else:
        assert v.ok and sources(v) == [("diff", 4)]
