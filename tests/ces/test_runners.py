"""Reading the runners' records and the guard, on record files laid out as the runners write
them (the real runners write them in test_free_rewards.py)."""

from __future__ import annotations

import os
from pathlib import Path

from bactrian.ces import runners
from bactrian.ces.stanzas import Stanzas, read_dir

JUNIT = """<?xml version='1.0' encoding='utf-8'?>
<testsuites><testsuite name='u2' tests='2'>
<properties><property name='cache_filename' value='/ces/tree/_build/default/test2/oUnit-$(suite_name).cache' /></properties>
<testcase name='u2:0:a' /><testcase name='u2:1:b'><failure message='x'/></testcase>
</testsuite></testsuites>
"""


def stanzas() -> Stanzas:
    st = Stanzas()
    read_dir("test", "(test (name ta) (libraries alcotest))\n", st)
    read_dir("test2", "(test (name tb) (libraries ounit2))\n", st)
    read_dir("test3", "(test (name tc) (libraries oUnit))\n", st)
    return st


def alcotest_run(tree: Path, d: str, run_id: str, names: list[str]) -> None:
    run = tree / "_build/default" / d / "_build/_tests" / run_id
    run.mkdir(parents=True)
    for n in names:
        (run / f"{n}.output").write_text("")


def test_records_of_one_run(tmp_path: Path) -> None:
    st = stanzas()
    assert not runners.make_records_dir(tmp_path, "n0nce", None)  # no _build yet
    alcotest_run(tmp_path, "test", "OLDRUN01", ["s.000"])  # from an earlier run
    before = runners.alcotest_runs(tmp_path, st)
    alcotest_run(tmp_path, "test", "NEWRUN01", ["s.000", "s.001", "t.000"])
    assert runners.make_records_dir(tmp_path, "n0nce", None)
    (runners.records_dir(tmp_path, "n0nce") / "u2.xml").write_text(JUNIT)
    output = (
        "          ta alias test/runtest (exit 1)\n1 failure! in 0.001s. 3 tests run.\n"
        "          tc alias test3/runtest\n..\nRan: 2 tests in: 0.01 seconds.\nOK\n"
    )
    report = runners.collect(tmp_path, st, output, alcotest_before=before, nonce="n0nce")
    assert {k: (r.total, r.failed) for k, r in report.items()} == {
        "alcotest:test": (3, 1),
        "ounit2:test2": (2, 1),
        "ounit1:test3": (2, 0),
    }
    assert runners.summary(report) == {"passed": 5, "failed": 2, "total": 7}
    assert runners.compare(st, report, report) == []
    runners.remove_records_dir(tmp_path, "n0nce")
    assert not runners.records_dir(tmp_path, "n0nce").exists()


def test_links_planted_by_the_job_are_not_followed(tmp_path: Path) -> None:
    st = stanzas()
    outside = tmp_path / "outside"
    (outside / "FAKERUN1").mkdir(parents=True)
    for i in range(5):
        (outside / "FAKERUN1" / f"s.00{i}.output").write_text("")
    tree = tmp_path / "tree"
    (tree / "_build/default/test/_build").mkdir(parents=True)
    os.symlink(outside, tree / "_build/default/test/_build/_tests")
    assert runners.alcotest_runs(tree, st) == set()
    os.symlink(tmp_path / "elsewhere", tree / "_build/.ces-records")
    assert not runners.make_records_dir(tree, "n", None)
    assert not (tmp_path / "elsewhere").exists()


def test_the_guard(tmp_path: Path) -> None:
    st = stanzas()
    base = {
        "alcotest:test": runners.SuiteResult(
            "alcotest", "test", 3, 0, runners.Counter(["a", "b", "c"])
        ),
        "ounit2:test2": runners.SuiteResult("ounit2", "test2", 2),
    }
    fewer = {
        "alcotest:test": runners.SuiteResult("alcotest", "test", 2, 0, runners.Counter(["a", "b"]))
    }
    problems = runners.compare(st, base, fewer)
    assert "suite test (alcotest) ran 2 tests where the base ran 3" in problems
    assert "suite test2 (ounit2) ran 0 tests where the base ran 2" in problems
    renamed = {
        "alcotest:test": runners.SuiteResult(
            "alcotest", "test", 3, 0, runners.Counter(["a", "b", "x"])
        ),
        "ounit2:test2": runners.SuiteResult("ounit2", "test2", 2),
    }
    assert runners.compare(st, base, renamed) == ["suite test: the base's tests c did not run"]
    # a red base: no counts, but every counted suite must run something; the OUnit 1 suite
    # in test3 left no records in the base's run, so the guard counts it as off
    assert runners.compare(st, None, {})[:2] == [
        "suite test (alcotest) ran no tests",
        "suite test2 (ounit2) ran no tests",
    ]
    assert runners.base_uncounted(st, base) == ["ounit2:test3 (no records from the base's run)"]


def test_junit_with_entities_is_refused(tmp_path: Path) -> None:
    st = stanzas()
    (tmp_path / "_build").mkdir()
    assert runners.make_records_dir(tmp_path, "n", None)
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + JUNIT.split("?>", 1)[1]
    (runners.records_dir(tmp_path, "n") / "u2.xml").write_text(bomb)
    assert runners.collect(tmp_path, st, "", alcotest_before=set(), nonce="n") == {}
