"""Test runners: which tests ran, read from the runners' own records, and the guard that
compares them with the base's, suite by suite.

The test stage's printed output is written by the code under test as much as by the runner (a
library can print ``Test Successful … 3 tests run.`` and exit 0), so counts come from records the
runner itself writes, read host-side without following links:

- **alcotest**: every run writes one ``<group>.<NNN>.output`` file per test case into a fresh
  run directory (a random run id) under ``_build/default/<dir>/_build/_tests/``; the run
  directories that appeared during this job's test run are its records.
- **OUnit 2** (and OUnit 1 suites run through OUnit 2's runner): a JUnit file per suite, named by
  ``OUNIT_OUTPUT_JUNIT_FILE`` into a directory whose name is a per-job nonce; the suite's
  directory comes from the ``cache_filename`` property OUnit records there.
- **OUnit 1** (``oUnit``'s own ``run_test_tt_main``): it writes no record, so its count comes
  from its ``Ran: N tests`` line in the part of dune's output that dune itself heads with
  ``<name> alias <dir>/runtest`` (weaker: documented).
- **plain** ``(test)`` executables and **inline** tests report nothing countable: a base with
  such a suite has the guard *off* for it, and the verdict says so.

The guard (:func:`compare`) passes when every counted suite of the base ran in this job with at
least the base's number of tests and every test name the base had (a runner that exited early,
a fake summary, a hidden test directory all fail it).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.ces.stanzas import Stanzas

COUNTED_RUNNERS = ("alcotest", "ounit2", "ounit1")
RECORDS_DIR = "_build/.ces-records"
MAX_RECORD_BYTES = 4 * 1024 * 1024
MAX_NAMES = 2000  # test names kept per suite

_RUN_ID = re.compile(r"^[A-Z0-9]{8}$")
_ALCOTEST_OUTPUT = re.compile(r"^(?P<name>.+)\.(?P<idx>\d{3})\.output$")
_DUNE_HEADER = re.compile(
    r"^ *(?P<exe>\S+) alias (?:(?P<dir>\S+)/)?runtest(?: \((?:exit \d+|got signal \w+)\))? *$",
    re.M,
)
_OUNIT_RAN = re.compile(r"^Ran: (\d+) tests? in: [0-9.]+ seconds\.", re.M)
_OUNIT_FAILED = re.compile(r"^FAILED: Cases: \d+ Tried: \d+ Errors: (\d+) Failures: (\d+)", re.M)
_ALCOTEST_FAIL = re.compile(r"(\d+) failures?! in [0-9.]+s\. \d+ tests? run\.")


@dataclass
class SuiteResult:
    """What one suite's records say about one test run."""

    runner: str
    dir: str
    total: int = 0
    failed: int = 0
    names: Counter[str] = field(default_factory=Counter)
    source: str = "base"  # "base": the base's test files; "diff": the diff's versions

    @property
    def key(self) -> str:
        return f"{self.runner}:{self.dir or '.'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "runner": self.runner,
            "dir": self.dir,
            "total": self.total,
            "failed": self.failed,
            "source": self.source,
        }

    def to_state(self) -> dict[str, Any]:
        return {**self.to_dict(), "names": dict(self.names)}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> SuiteResult:
        return cls(
            runner=d["runner"],
            dir=d["dir"],
            total=int(d["total"]),
            failed=int(d.get("failed", 0)),
            names=Counter({str(k): int(v) for k, v in (d.get("names") or {}).items()}),
            source=d.get("source", "base"),
        )


Report = dict[str, SuiteResult]


# ------------------------------------------------------------------ reading without links
@contextlib.contextmanager
def _open_dir(root: Path, rel: str) -> Iterator[int | None]:
    """A directory fd for ``root/rel``, every component opened with ``O_NOFOLLOW`` (None when
    some component is missing, a link or not a directory)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        fd = os.open(str(root), flags)
    except OSError:
        yield None
        return
    try:
        for part in [p for p in rel.split("/") if p and p != "."]:
            if part == "..":
                yield None
                return
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except OSError:
                yield None
                return
            os.close(fd)
            fd = nfd
        yield fd
    finally:
        os.close(fd)


def _entries(dir_fd: int) -> list[tuple[str, int]]:
    """(name, st_mode) of each entry, links not followed."""
    out = []
    for name in os.listdir(dir_fd):
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        out.append((name, st.st_mode))
    return out


def _read(dir_fd: int, name: str, limit: int = MAX_RECORD_BYTES) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    finally:
        os.close(fd)


def read_file_nofollow(root: Path, rel: str, limit: int = 64 * 1024 * 1024) -> bytes | None:
    """The bytes of ``root/rel`` (None when missing, a link anywhere on the way, or not a file)."""
    d, _, name = rel.rpartition("/")
    with _open_dir(root, d) as fd:
        if fd is None:
            return None
        return _read(fd, name, limit)


# ------------------------------------------------------------------ alcotest
def _alcotest_dir(d: str) -> str:
    return "/".join(p for p in ("_build/default", d, "_build/_tests") if p)


def alcotest_runs(tree: Path, stanzas: Stanzas) -> set[str]:
    """Every alcotest run directory under the tree now (``dir/RUNID``), to diff against."""
    out: set[str] = set()
    for d in sorted({s.dir for s in stanzas.suites if s.runner == "alcotest"}):
        with _open_dir(tree, _alcotest_dir(d)) as fd:
            if fd is None:
                continue
            for name, mode in _entries(fd):
                if stat.S_ISDIR(mode) and _RUN_ID.match(name):
                    out.add(f"{d}/{name}")
    return out


def _alcotest_records(tree: Path, stanzas: Stanzas, before: set[str]) -> Report:
    report: Report = {}
    for run in sorted(alcotest_runs(tree, stanzas) - before):
        d, _, run_id = run.rpartition("/")
        res = report.setdefault(f"alcotest:{d or '.'}", SuiteResult("alcotest", d))
        with _open_dir(tree, f"{_alcotest_dir(d)}/{run_id}") as fd:
            if fd is None:
                continue
            for name, mode in _entries(fd):
                m = _ALCOTEST_OUTPUT.match(name)
                if m and stat.S_ISREG(mode):
                    res.total += 1
                    if len(res.names) < MAX_NAMES:
                        res.names[f"{m.group('name')}.{m.group('idx')}"] += 1
    return report


# ------------------------------------------------------------------ OUnit
def _safe_xml(data: bytes) -> ET.Element | None:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return None
    try:
        return ET.fromstring(data)
    except ET.ParseError:
        return None


def _junit_dir(suite: ET.Element) -> str | None:
    for prop in suite.iter("property"):
        if prop.get("name") == "cache_filename":
            value = prop.get("value") or ""
            head, sep, rest = value.partition("_build/default/")
            if sep:
                return rest.rpartition("/")[0]
    return None


def _ounit_records(tree: Path, nonce: str) -> Report:
    report: Report = {}
    with _open_dir(tree, f"{RECORDS_DIR}/{nonce}") as fd:
        if fd is None:
            return report
        for name, mode in sorted(_entries(fd)):
            if not (stat.S_ISREG(mode) and name.endswith(".xml")):
                continue
            data = _read(fd, name)
            root = _safe_xml(data) if data else None
            if root is None:
                continue
            for suite in root.iter("testsuite"):
                d = _junit_dir(suite)
                if d is None:
                    continue
                res = report.setdefault(f"ounit2:{d or '.'}", SuiteResult("ounit2", d))
                for case in suite.iter("testcase"):
                    res.total += 1
                    if case.find("failure") is not None or case.find("error") is not None:
                        res.failed += 1
                    if len(res.names) < MAX_NAMES:
                        res.names[case.get("name") or ""] += 1
    return report


def dune_sections(output: str) -> dict[str, str]:
    """dune's output split by the ``<exe> alias <dir>/runtest`` lines dune prints before each
    test action's output: directory → that output."""
    out: dict[str, str] = {}
    marks = list(_DUNE_HEADER.finditer(output))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(output)
        d = m.group("dir") or ""
        out[d] = out.get(d, "") + output[m.end() : end]
    return out


def _ounit1_counts(stanzas: Stanzas, output: str) -> Report:
    report: Report = {}
    sections = dune_sections(output)
    for d in sorted({s.dir for s in stanzas.suites if s.runner == "ounit1"}):
        text = sections.get(d)
        if text is None:
            continue
        ran = [int(x) for x in _OUNIT_RAN.findall(text)]
        if not ran:
            continue
        res = SuiteResult("ounit1", d, total=sum(ran))
        res.failed = sum(int(e) + int(f) for e, f in _OUNIT_FAILED.findall(text))
        report[res.key] = res
    return report


# ------------------------------------------------------------------ one test run
def collect(
    tree: Path, stanzas: Stanzas, output: str, *, alcotest_before: set[str], nonce: str
) -> Report:
    """The records of the test run that just ended."""
    report = _alcotest_records(tree, stanzas, alcotest_before)
    report.update(_ounit_records(tree, nonce))
    ounit1 = _ounit1_counts(stanzas, output)
    for key, res in ounit1.items():
        if f"ounit2:{res.dir or '.'}" not in report:  # OUnit 1 through OUnit 2's runner
            report[key] = res
    sections = dune_sections(output)
    for res in report.values():
        if res.runner == "alcotest" and res.dir in sections:
            res.failed = sum(int(x) for x in _ALCOTEST_FAIL.findall(sections[res.dir]))
    return report


def merge(into: Report, more: Report) -> None:
    for key, res in more.items():
        if key in into:
            into[key].total += res.total
            into[key].failed += res.failed
            into[key].names.update(res.names)
        else:
            into[key] = res


def counted_suites(stanzas: Stanzas) -> dict[str, list[str]]:
    """Report key → test names of every stanza suite the CES can count (alcotest/OUnit)."""
    out: dict[str, list[str]] = {}
    for s in stanzas.suites:
        if s.runner in COUNTED_RUNNERS:
            key = f"{'ounit2' if s.runner == 'ounit1' else s.runner}:{s.dir or '.'}"
            out.setdefault(key, []).extend(s.names)
    return out


def uncounted_suites(stanzas: Stanzas) -> list[str]:
    return [
        f"{s.runner}:{s.dir or '.'}:{','.join(s.names)}"
        for s in stanzas.suites
        if s.runner not in COUNTED_RUNNERS
    ]


def _find(report: Report, key: str) -> SuiteResult | None:
    if key in report:
        return report[key]
    if key.startswith("ounit2:"):  # an OUnit 1 suite counted from its output
        return report.get("ounit1:" + key.split(":", 1)[1])
    return None


def missing_dirs(stanzas: Stanzas, report: Report) -> list[str]:
    """Directories of counted suites with no records in ``report`` (did not run)."""
    return sorted({k.split(":", 1)[1] for k in counted_suites(stanzas) if _find(report, k) is None})


def compare(stanzas: Stanzas, base: Report | None, got: Report) -> list[str]:
    """What is wrong with ``got`` against the base (empty: the guard passes). With no base
    report (a red base) every counted suite must still have run at least one test."""
    problems = []
    for key in counted_suites(stanzas):
        want = (base or {}).get(key) or (_find(base, key) if base is not None else None)
        res = _find(got, key)
        d = key.split(":", 1)[1]
        if base is not None and want is None:
            continue  # the base itself left no records for it: counted as uncounted
        need = want.total if want is not None else 1
        have = res.total if res is not None else 0
        if have < need:
            problems.append(
                f"suite {d} ({key.split(':')[0]}) ran {have} tests where the base ran {need}"
                if want is not None
                else f"suite {d} ({key.split(':')[0]}) ran no tests"
            )
            continue
        if want is not None and res is not None and want.names:
            lost = sorted((want.names - res.names).keys())
            if lost:
                problems.append(
                    f"suite {d}: the base's tests {', '.join(lost[:5])}"
                    f"{' …' if len(lost) > 5 else ''} did not run"
                )
    return problems


def base_uncounted(stanzas: Stanzas, base: Report | None) -> list[str]:
    """Suites the guard cannot count: plain/inline suites, and counted-runner suites that left
    no records when the base ran."""
    out = uncounted_suites(stanzas)
    if base is not None:
        for key in counted_suites(stanzas):
            if _find(base, key) is None:
                out.append(key + " (no records from the base's run)")
    return out


def summary(report: Report) -> dict[str, int] | None:
    """``{"passed", "failed", "total"}`` over every suite with records (None when none)."""
    if not report:
        return None
    total = sum(r.total for r in report.values())
    failed = min(total, sum(r.failed for r in report.values()))
    return {"passed": total - failed, "failed": failed, "total": total}


def report_to_state(report: Report | None) -> dict[str, Any] | None:
    return None if report is None else {k: r.to_state() for k, r in report.items()}


def report_from_state(d: dict[str, Any] | None) -> Report | None:
    return None if d is None else {k: SuiteResult.from_state(v) for k, v in d.items()}


def records_dir(tree: Path, nonce: str) -> Path:
    return tree / RECORDS_DIR / nonce


def make_records_dir(tree: Path, nonce: str, uid: int | None) -> bool:
    """Create ``_build/.ces-records/<nonce>`` for the runners to write into (components opened
    without following links; owned by the sandbox uid when running as root)."""
    with _open_dir(tree, "_build") as build_fd:
        if build_fd is None:
            return False
        fd = os.dup(build_fd)
        try:
            for part in (".ces-records", nonce):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                if uid is not None and os.geteuid() == 0:
                    os.fchown(nfd, uid, uid)
                os.close(fd)
                fd = nfd
        except OSError:
            return False
        finally:
            os.close(fd)
        return True


def remove_records_dir(tree: Path, nonce: str) -> None:
    """Delete ``_build/.ces-records/<nonce>`` and its plain files (nothing followed; a
    directory the job put there is left for the reset)."""
    with _open_dir(tree, RECORDS_DIR) as parent:
        if parent is None:
            return
        with _open_dir(tree, f"{RECORDS_DIR}/{nonce}") as fd:
            if fd is None:
                return
            for name, mode in _entries(fd):
                if not stat.S_ISDIR(mode):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=fd)
        with contextlib.suppress(OSError):
            os.rmdir(nonce, dir_fd=parent)
