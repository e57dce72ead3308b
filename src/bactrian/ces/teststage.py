"""The ``test`` stage: which tests run, from where, and whether their results can be believed.

Policies for a diff that adds, edits or deletes test files (``[ces] edits_tests_policy``):

- ``both`` (default, for model output): the diff's tests run as written against the diff's code
  (the diff's new or extended tests must be real), then the base's own test files, put back
  unmodified, run against the diff's code too (the base's tests guard behaviour). The stage
  passes only when both runs pass their guards. A diff that deletes a base test file fails.
- ``pristine``: only the base's test files run (the diff's test changes are undone first).
- ``trust``: only the diff's tests run, as written — for human-written (gold) diffs only.
- ``fail``: the stage fails without running (the old default).

A diff that touches no test file gets one run (the base's tests). Each run's results come from
the runners' own records (:mod:`bactrian.ces.runners`), and every base suite the test command
left out (dune skips suites whose inputs did not change unless forced) is run on its own with
the adapter's suite command, so the guard compares like with like, suite by suite. After each
run, the base's test files the run should have used unmodified are checked in the source tree
and in dune's copies under ``_build/default`` (a build rule that rewrites them fails the stage).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.ces import runners
from bactrian.ces.contract import StageResult
from bactrian.ces.runners import Report
from bactrian.ces.stanzas import Stanzas
from bactrian.ces.tree import Entry

RunFn = Callable[[str, dict[str, str]], tuple[StageResult, list[str]]]
"""Run one shell command in the job's sandbox with extra environment: (result, flags)."""


@dataclass
class TestOutcome:
    """The test stage's result and what the verdict reports about it."""

    result: StageResult
    flags: list[str] = field(default_factory=list)
    suites: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, int] | None = None


@dataclass
class Guard:
    """What the worker knows about a base's tests (from its stanzas and its warm run)."""

    stanzas: Stanzas | None
    base: Report | None  # the base's own run (None for a red base)
    inside_tree: str  # the tree's path as the test processes see it
    suite_command: Callable[[list[str]], str] | None

    def state(self) -> tuple[str, list[str]]:
        """``("on" | "off" | "none", uncounted suites)``: ``none`` when the base has no suites
        the CES knows of (the test command's exit status is all there is)."""
        if self.stanzas is None or not self.stanzas.suites:
            return "none", []
        uncounted = runners.base_uncounted(self.stanzas, self.base)
        return ("off" if uncounted else "on"), uncounted


def run_suites(
    tree: Path, command: str, run: RunFn, guard: Guard, uid: int | None
) -> tuple[StageResult, list[str], Report]:
    """Run ``command``, then any counted suite it left out; the records of both."""
    st = guard.stanzas
    if st is None or not st.suites:
        res, flags = run(command, {})
        return res, flags, {}
    res, flags, report = _one_run(tree, command, run, guard, uid)
    if res.status != "passed" or guard.suite_command is None:
        return res, flags, report
    missing = runners.missing_dirs(st, report)
    if missing:
        cmd = guard.suite_command(missing)
        res2, flags2, more = _one_run(tree, cmd, run, guard, uid)
        flags += [f for f in flags2 if f not in flags]
        res.output += (
            f"\n[bactrian: the test command did not run the suites of {', '.join(missing)}; "
            f"running them: {cmd}]\n" + res2.output
        )
        res.duration_s = round(res.duration_s + res2.duration_s, 4)
        if res2.status != "passed":
            res.status, res.exit_code = res2.status, res2.exit_code
        runners.merge(report, more)
    return res, flags, report


def _one_run(
    tree: Path, command: str, run: RunFn, guard: Guard, uid: int | None
) -> tuple[StageResult, list[str], Report]:
    assert guard.stanzas is not None
    before = runners.alcotest_runs(tree, guard.stanzas)
    nonce = secrets.token_hex(12)
    env: dict[str, str] = {}
    if runners.make_records_dir(tree, nonce, uid):
        env["OUNIT_OUTPUT_JUNIT_FILE"] = (
            f"{guard.inside_tree}/{runners.RECORDS_DIR}/{nonce}/$(suite_name).xml"
        )
    res, flags = run(command, env)
    report = runners.collect(tree, guard.stanzas, res.output, alcotest_before=before, nonce=nonce)
    runners.remove_records_dir(tree, nonce)
    return res, flags, report


def check_guard(res: StageResult, guard: Guard, report: Report) -> None:
    """Fail ``res`` when the records do not match the base's."""
    if res.status != "passed" or guard.stanzas is None:
        return
    problems = runners.compare(guard.stanzas, guard.base, report)
    if problems:
        res.status = "failed"
        res.output += (
            "\n[bactrian: the test runners' records do not match the base's: "
            + "; ".join(problems)
            + "]\n"
        )


def tampered(tree: Path, base_manifest: dict[str, Entry], paths: list[str]) -> list[str]:
    """Base test files (source, or dune's copy under ``_build/default``) whose content is no
    longer the base's."""
    bad = []
    for rel in paths:
        kind, digest = base_manifest[rel]
        if kind not in ("f", "x"):
            continue
        src = runners.read_file_nofollow(tree, rel)
        if src is None or hashlib.sha1(src).hexdigest() != digest:
            bad.append(rel)
            continue
        copy = runners.read_file_nofollow(tree, f"_build/default/{rel}")
        if copy is not None and hashlib.sha1(copy).hexdigest() != digest:
            bad.append(f"_build/default/{rel}")
    return bad


def suites_of(report: Report, source: str) -> list[dict[str, Any]]:
    out = []
    for key in sorted(report):
        d = report[key].to_dict()
        d["source"] = source
        out.append(d)
    return out


def uncounted_weight_note(uncounted: list[str]) -> str:
    return (
        "[bactrian: the test guard is off for "
        + ", ".join(uncounted)
        + ": their runner reports no countable results, so the test stage earns "
        "[ces] uncounted_test_weight]"
    )
