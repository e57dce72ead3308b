"""CES determinism under load (issue 9 "Performance"): the same jobs, judged again and again
while the host is busy, give the same verdicts.

    .venv/bin/python benchmarks/bench_ces_determinism.py [--runs 20] [--workers 2] [--no-docs]

A fixed set of jobs on the bundled sample workspace (``bactrian.sample``): a green edit, a type
error, a parse error, a diff whose tests fail and a green edit that also extends the tests. Each
run judges the whole set on one warm local pool (bubblewrap, overlay isolation), in a shuffled
order, while two host processes run the whole time:

- a **disk-heavy** one: ``dd`` writing and fsyncing 256 MB files into a temporary directory on the
  file system of the CES's work directory, deleting each and starting again;
- a **CPU-heavy** one: a busy loop.

Every verdict's :meth:`~bactrian.ces.contract.Verdict.fingerprint` (state, stages and their
statuses, flags, diagnostics, tests, reward — no timings or ids) must be the same in every run;
an ``error`` verdict (the machine's fault) counts as a difference too. The figures go to the
"CES determinism under load" section of ``docs/benchmarks.md`` unless ``--no-docs``. Exits 1 when any job gave two verdicts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _docs import write_section  # noqa: E402

from bactrian import sample  # noqa: E402
from bactrian.ces.config import CESConfig  # noqa: E402
from bactrian.ces.contract import BaseSpec, Job  # noqa: E402
from bactrian.ces.local import LocalBackend  # noqa: E402
from bactrian.diffs.render import render_diff  # noqa: E402

DOCS = HERE.parent / "docs" / "benchmarks.md"
PART = "## CES determinism under load"

# name -> [(file, old, new)]: edits of the sample workspace
EDITS: dict[str, list[tuple[str, str, str]]] = {
    "green": [("lib/util.ml", "if len >= n then s else s ^", "if n <= len then s else s ^")],
    "type-error": [("lib/util.ml", "let len = String.length s in", "let len = String.length 1 in")],
    "parse-error": [
        ("lib/util.ml", "let len = String.length s in", "let len = String.length s in (")
    ],
    "failing-tests": [("lib/util.ml", '|> List.filter (fun w -> w <> "")', "")],
    "green-extends-tests": [
        ("lib/util.ml", "if len >= n then s else s ^", "if n <= len then s else s ^"),
        (
            "test/test_tally.ml",
            "let () =\n  Alcotest.run",
            'let test_pad () = Alcotest.(check string) "pad" "ab  " (Util.pad_right 4 "ab")\n\n'
            "let () =\n  Alcotest.run",
        ),
        (
            "test/test_tally.ml",
            '("ledger", [ Alcotest.test_case "unbalanced"',
            '("util", [ Alcotest.test_case "pad" `Quick test_pad ]);\n'
            '      ("ledger", [ Alcotest.test_case "unbalanced"',
        ),
    ],
}


def make_jobs(ws: Path) -> dict[str, str]:
    out = {}
    for name, edits in EDITS.items():
        old: dict[str, str] = {}
        new: dict[str, str] = {}
        for rel, a, b in edits:
            text = new.get(rel) or (ws / rel).read_text()
            old.setdefault(rel, text)
            if a not in text:
                raise SystemExit(f"the sample workspace changed: {a!r} is not in {rel}")
            new[rel] = text.replace(a, b, 1)
        out[name] = render_diff(old, new)
    return out


def start_load(scratch: Path) -> list[subprocess.Popen[bytes]]:
    """A disk-heavy and a CPU-heavy process, each in its own process group."""
    disk = scratch / "disk-load"
    disk.mkdir()
    loop = (
        f"while :; do dd if=/dev/zero of={disk}/fill bs=1M count=256 conv=fsync "
        f"status=none; rm -f {disk}/fill; done"
    )
    return [
        subprocess.Popen(["sh", "-c", loop], start_new_session=True),
        subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True),
    ]


def stop_load(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, 9)
        p.wait()


def run(runs: int, workers: int, seed: int) -> dict[str, object]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-ces-det-"))
    load0 = os.getloadavg()[0]
    try:
        ws = scratch / "ws"
        sample.copy_workspace(ws)
        jobs = make_jobs(ws)
        config = CESConfig(workers=workers, work_dir=scratch / "work", stage_timeouts={})
        backend = LocalBackend(config)
        base = BaseSpec(str(ws))
        t0 = time.monotonic()
        backend.warm(base, workers)
        warm_s = time.monotonic() - t0
        print(f"warm: {workers} workers in {warm_s:.1f} s", flush=True)
        seen: dict[str, set[str]] = {name: set() for name in jobs}
        first: dict[str, dict[str, object]] = {}
        states: dict[str, int] = {}
        load = start_load(scratch)
        rng = random.Random(seed)
        t0 = time.monotonic()
        try:
            for r in range(runs):
                order = list(jobs)
                rng.shuffle(order)
                verdicts = backend.evaluate([Job(base, jobs[n]) for n in order])
                for name, v in zip(order, verdicts, strict=True):
                    fp = v.fingerprint()
                    seen[name].add(json.dumps(fp, sort_keys=True))
                    first.setdefault(name, fp)
                    states[v.state] = states.get(v.state, 0) + 1
                print(
                    f"run {r + 1}/{runs}: "
                    + ", ".join(f"{n} {len(seen[n])}" for n in jobs)
                    + f" distinct; {time.monotonic() - t0:.0f} s",
                    flush=True,
                )
        finally:
            stop_load(load)
            backend.close()
        took = time.monotonic() - t0
        return {
            "runs": runs,
            "workers": workers,
            "jobs": {
                n: {
                    "distinct": len(seen[n]),
                    "state": first[n]["state"],
                    "furthest": first[n]["furthest"],
                    "reward": first[n]["reward"],
                    "stages": "→".join(
                        f"{s['name']}:{s['status']}"
                        for s in first[n]["stages"]  # type: ignore[attr-defined]
                    ),
                }
                for n in jobs
            },
            "states": states,
            "took_s": took,
            "warm_s": warm_s,
            "load": f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def render(r: dict[str, object], command: str) -> str:
    jobs: dict[str, dict[str, object]] = r["jobs"]  # type: ignore[assignment]
    rows = "\n".join(
        f"| {n} | {j['state']} | {j['furthest']} | {j['reward']} | {j['stages']} | "
        f"**{j['distinct']}** |"
        for n, j in jobs.items()
    )
    same = all(j["distinct"] == 1 for j in jobs.values())
    return f"""{PART}

Command: `{command}` — {dt.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores
(shared with other engineers; 1-min load average {r["load"]}). {r["runs"]} runs of the same
{len(jobs)} jobs on the bundled sample workspace, shuffled, on one warm pool of {r["workers"]}
workers (bubblewrap, overlay isolation, the defaults: typecheck + build fused), while a `dd` loop writes and fsyncs 256 MB files on the
work directory's file system and a busy loop holds a core; {r["took_s"]:.0f} s in all. Verdict
states over all runs: {r["states"]}.

| job | state | furthest | reward | stages | distinct verdicts over {r["runs"]} runs |
|---|---|---|---|---|---|
{rows}

Goal: one verdict per job (identical state, stages, flags, diagnostics, tests and reward in
every run) — **{"met" if same else "not met"}**.

"""


def write_docs(part: str) -> None:
    write_section(PART, part, DOCS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = ap.parse_args(argv)
    result = run(args.runs, args.workers, args.seed)
    command = ".venv/bin/python benchmarks/bench_ces_determinism.py"
    if args.runs != 20 or args.workers != 2:
        command += f" --runs {args.runs} --workers {args.workers}"
    part = render(result, command)
    print(part)
    if not args.no_docs:
        write_docs(part)
    jobs: dict[str, dict[str, object]] = result["jobs"]  # type: ignore[assignment]
    return 0 if all(j["distinct"] == 1 for j in jobs.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
