"""CES benchmarks on a generated 200-module OCaml/dune workspace (issue 5 "Performance").

    .venv/bin/python benchmarks/bench_ces.py [--modules 200] [--diffs 12] [--no-docs]

Three ratios, measured side by side in one run, on the same diffs (every diff kind of
``_ocaml_gen``: green edits, a type error, a parse error, a failing test):

(a) **throughput vs the naive way**: the CES (local backend, 2 warm workers, bubblewrap) against
    a fresh copy + cold ``dune build`` + ``dune runtest`` per diff, two at a time (the same two
    cores). Goal ≥ 20×. Warming is reported, not counted: it is paid once per base.
(b) **overhead over the raw incremental build**: per diff, the stage commands run directly in a
    warm tree (apply with ``patch``, the same commands, ``patch -R`` after; only the commands
    timed) against the CES judging the same diff on one warm worker (apply + sandbox + job layer +
    verify + bookkeeping included). Interleaved diff by diff so machine noise hits both. Goal
    ≤ 10 %.
(c) **two workers vs one**: the whole batch on a 1-worker pool and on a 2-worker pool. Goal
    ≥ 1.7×.

It also checks that every verdict reaches the furthest stage its diff kind should reach. The
figures go to the "Code Evaluation Service" section of ``docs/benchmarks.md`` unless
``--no-docs``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _ces_throughput as throughput  # noqa: E402
from _docs import write_section  # noqa: E402
from _ocaml_gen import generate, make_diffs  # noqa: E402

from bactrian.ces.adapters import get_adapter  # noqa: E402
from bactrian.ces.config import CESConfig  # noqa: E402
from bactrian.ces.contract import STAGES, BaseSpec, Job, Verdict  # noqa: E402
from bactrian.ces.local import LocalBackend  # noqa: E402

DOCS = HERE.parent / "docs" / "benchmarks.md"
SECTION = "## Code Evaluation Service"
sh = throughput.sh  # fresh copy + cold build: dune's cache off, as the naive side runs


def touched_files(diff: str) -> list[str]:
    return sorted(set(re.findall(r"^\+\+\+ b/(\S+)", diff, flags=re.M)))


# ---------------------------------------------------------------------------- (a) naive


def naive_one(src: Path, scratch: Path, diff: str) -> str | None:
    """Fresh copy, apply, cold build, tests. Returns the furthest of build/test passed."""
    tree = Path(tempfile.mkdtemp(dir=scratch))
    try:
        shutil.copytree(src, tree, dirs_exist_ok=True, ignore=shutil.ignore_patterns("_build"))
        if sh(["patch", "-p1", "-s", "--batch"], tree, diff) != 0:
            return None
        if sh("dune build --root . 2>&1", tree) != 0:
            return "apply"
        if sh("dune runtest --root . 2>&1", tree) != 0:
            return "build"
        return "test"
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def naive(src: Path, scratch: Path, diffs: list[str], parallel: int) -> float:
    start = time.monotonic()
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(lambda d: naive_one(src, scratch, d), diffs))
    return time.monotonic() - start


# ---------------------------------------------------------------------------- (b) raw


def raw_one(tree: Path, diff: str, stages: dict[str, str]) -> float:
    """Apply with patch, run the adapter's stage commands until one fails, revert. Only the
    stage commands are timed."""
    if sh(["patch", "-p1", "-s", "--batch"], tree, diff) != 0:
        return 0.0
    adapter = get_adapter("auto", tree)
    touched = touched_files(diff)
    elapsed = 0.0
    try:
        for stage in STAGES[1:]:
            cmd = adapter.command(stage, touched, stages)
            if not cmd:
                continue
            t0 = time.monotonic()
            rc = sh(cmd, tree)
            elapsed += time.monotonic() - t0
            if rc != 0:
                break
    finally:
        if sh(["patch", "-p1", "-R", "-s", "--batch"], tree, diff) != 0:
            raise RuntimeError("patch -R failed: the raw tree is no longer the base")
    return elapsed


# ---------------------------------------------------------------------------- main


def run(modules: int, n_diffs: int, seed: int) -> dict[str, float | int | str]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-ces-"))
    load0 = os.getloadavg()[0]
    try:
        result = _run(scratch, modules, n_diffs, seed)
        result["load"] = f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _judge(backend: LocalBackend, base: BaseSpec, diffs: list[str]) -> tuple[float, list[Verdict]]:
    t0 = time.monotonic()
    verdicts = backend.evaluate([Job(base=base, diff=d) for d in diffs])
    return time.monotonic() - t0, verdicts


def _run(scratch: Path, modules: int, n_diffs: int, seed: int) -> dict[str, float | int | str]:
    src = scratch / "ws"
    ws = generate(src, modules=modules, seed=seed)
    cases = make_diffs(ws, n_diffs, seed=seed + 1)
    diffs = [d for _, _, d in cases]
    print(f"workspace: {modules} modules at {src}; {len(diffs)} diffs", flush=True)
    stages: dict[str, str] = {}  # the dune adapter's own commands
    base = BaseSpec(str(src), stages=stages)

    def backend(workers: int, name: str, build_jobs: int = 0) -> LocalBackend:
        cfg = CESConfig(workers=workers, work_dir=scratch / name, build_jobs=build_jobs)
        return LocalBackend(cfg)

    # each pool gives each worker cores // workers dune jobs: one worker builds with -j 2,
    # two workers with -j 1 each; `one_core` is one worker held to one core (-j 1)
    one, two, one_core = backend(1, "w1"), backend(2, "w2"), backend(1, "w1j1", build_jobs=1)
    try:
        t0 = time.monotonic()
        one.warm(base, workers=1)
        warm1 = time.monotonic() - t0
        one_core.warm(base, workers=1)
        t0 = time.monotonic()
        two.warm(base, workers=2)
        warm2 = time.monotonic() - t0
        print(f"warm: 1 worker {warm1:.1f} s, 2 workers {warm2:.1f} s", flush=True)

        # correctness first
        _, verdicts = _judge(two, base, diffs)
        wrong = [
            f"{kind}: got {v.furthest!r}, want {want!r}"
            for (kind, want, _), v in zip(cases, verdicts, strict=True)
            if v.furthest != want
        ]
        for w in wrong:
            print("WRONG VERDICT", w, flush=True)
        per_stage = {
            st: sum((v.stage(st).duration_s if v.stage(st) else 0.0) for v in verdicts) / len(diffs)
            for st in STAGES
        }
        breakdown = ", ".join(f"{k} {v:.2f} s" for k, v in per_stage.items())
        print(f"mean stage time per job: {breakdown}", flush=True)

        # (c) two workers vs one, alternated twice
        t1s, t2s, t1cs = [], [], []
        for _ in range(2):
            t1s.append(_judge(one, base, diffs)[0])
            t2s.append(_judge(two, base, diffs)[0])
            t1cs.append(_judge(one_core, base, diffs)[0])
        t1, t2, t1c = min(t1s), min(t2s), min(t1cs)
        print(
            f"(c) 1 worker {t1:.1f} s, 1 worker on one core {t1c:.1f} s, 2 workers {t2:.1f} s "
            f"-> {t1 / t2:.2f}x, {t1c / t2:.2f}x",
            flush=True,
        )

        # (b) overhead: interleaved per diff, one worker vs a raw warm tree
        raw_tree = scratch / "raw"
        shutil.copytree(src, raw_tree)
        if sh("dune build --root . 2>&1 && dune runtest --root . 2>&1", raw_tree) != 0:
            raise RuntimeError("the generated workspace is not green")
        raw_total = ces_total = 0.0
        for _ in range(2):
            for d in diffs:
                raw_total += raw_one(raw_tree, d, stages)
                ces_total += _judge(one, base, [d])[0]
        overhead = ces_total / raw_total - 1.0
        print(
            f"(b) raw {raw_total:.1f} s, CES {ces_total:.1f} s -> overhead {overhead:+.1%}",
            flush=True,
        )

        # (a) naive vs CES with 2 workers, same diffs, 2 at a time
        t_naive = naive(src, scratch, diffs, parallel=2)
        t_ces = min(t2s)
        print(
            f"(a) naive {t_naive:.1f} s, CES {t_ces:.1f} s -> {t_naive / t_ces:.1f}x",
            flush=True,
        )
    finally:
        one.close()
        two.close()
        one_core.close()
    return {
        "modules": modules,
        "diffs": len(diffs),
        "warm1_s": warm1,
        "warm2_s": warm2,
        "naive_s": t_naive,
        "ces2_s": t_ces,
        "speedup": t_naive / t_ces,
        "raw_s": raw_total,
        "ces1_seq_s": ces_total,
        "overhead": overhead,
        "one_s": t1,
        "two_s": t2,
        "scaling": t1 / t2,
        "one_core_s": t1c,
        "scaling_per_core": t1c / t2,
        "wrong": len(wrong),
        "breakdown": breakdown,
    }


def fused_vs_staged(modules: int, n_diffs: int, seed: int, rounds: int = 2) -> str:
    """One warm worker judging the same diffs with ``fuse_stages`` on and off, interleaved
    diff by diff (so machine noise hits both): the time a job saves by running typecheck and
    build as one dune invocation."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-ces-fused-"))
    try:
        src = scratch / "ws"
        ws = generate(src, modules=modules, seed=seed)
        cases = make_diffs(ws, n_diffs, seed=seed + 1)
        base = BaseSpec(str(src))
        pools = {
            fuse: LocalBackend(
                CESConfig(workers=1, work_dir=scratch / f"f{fuse}", fuse_stages=fuse)
            )
            for fuse in (True, False)
        }
        try:
            for be in pools.values():
                be.warm(base, workers=1)
            totals = {True: 0.0, False: 0.0}
            agree = True
            for _ in range(rounds):
                for _, _, d in cases:
                    got = {}
                    for fuse, be in pools.items():
                        took, [v] = _judge(be, base, [d])
                        totals[fuse] += took
                        got[fuse] = v.fingerprint()
                    agree = agree and got[True] == got[False]
        finally:
            for be in pools.values():
                be.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratio = totals[False] / totals[True]
    return (
        f"fused vs staged, {modules} modules, {len(cases)} diffs x {rounds}, one warm worker, "
        f"interleaved: staged {totals[False]:.1f} s, fused {totals[True]:.1f} s -> "
        f"{ratio:.2f}x; verdicts identical: {agree}"
    )


def render(r: dict[str, float | int | str], command: str) -> str:
    def f(key: str) -> float:
        return float(r[key])

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    n = int(r["diffs"])
    return f"""{SECTION}

Command: `{command}` — {dt.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores
(shared with other jobs; 1-min load average {r.get("load", "?")}), bubblewrap sandbox. Workspace: `benchmarks/_ocaml_gen.py`,
{r["modules"]} modules (`.ml` + `.mli`, ~100 lines each, a 10-layer DAG) and one alcotest suite;
{n} diffs cycling through green edits, a type error, a parse error and a failing test.
Verdicts that missed their expected stage: {r["wrong"]}.

| ratio | measured | goal | |
|---|---|---|---|
| (a) throughput, CES (2 warm workers) vs fresh copy + cold build + tests (2 at a time) | **{f("speedup"):.1f}×** ({f("naive_s"):.1f} s vs {f("ces2_s"):.1f} s for {n} diffs) | ≥ 20× | {verdict(f("speedup") >= 20)} |
| (b) overhead of the CES over the raw incremental stage commands, same diffs, one worker | **{f("overhead"):+.1%}** ({f("ces1_seq_s"):.1f} s vs {f("raw_s"):.1f} s, 2 × {n} diffs interleaved) | ≤ 10% | {verdict(f("overhead") <= 0.10)} |
| (c) two workers (dune `-j 1` each) vs one worker held to one core (`-j 1`), whole batch | **{f("scaling_per_core"):.2f}×** ({f("one_core_s"):.1f} s vs {f("two_s"):.1f} s) | ≥ 1.7× | {verdict(f("scaling_per_core") >= 1.7)} |
| (c′) two workers vs one worker given both cores (dune `-j 2`), whole batch | **{f("scaling"):.2f}×** ({f("one_s"):.1f} s vs {f("two_s"):.1f} s) | (reference) | |

Warming (paid once per base, not counted above): {f("warm1_s"):.1f} s for one worker,
{f("warm2_s"):.1f} s for two (the second copies the first's `_build`). Mean time per job by
stage (2 workers): {r.get("breakdown", "?")}.

Reading the figures: (b) near zero means a job costs what its incremental dune runs cost (the
stage breakdown above, where `dune build` — recompiling the touched module, re-archiving the
library and relinking the test executable — dominates); the CES's own work (apply, sandbox
set-up, reset, tree-hash verification, bookkeeping) is small next to it. All three ratios move
with the load of this shared machine from run to run, (c) most: two workers need two idle cores.
(c) is how throughput scales per worker when each worker owns one core; (c′) is what a second
worker adds over one worker that already builds with both cores — less, because dune's own
`-j 2` already overlaps part of an incremental build. Pools set each worker's dune `-j` to
cores ÷ workers (`[ces] build_jobs`, 0 = auto). The CES runs with its defaults, so typecheck
and build are one fused dune run when they pass cleanly (`[ces] fuse_stages`; see the
throughput part below for fused against staged); a job still pays two dune start-ups (the
fused run and the tests), and a cold build of this small, shallow workspace is only ~17 s.

"""


def write_docs(section: str) -> None:
    write_section(SECTION, section, DOCS)


def write_throughput_docs(part: str) -> None:
    """Replace (or add, at the end of the CES section) the ``### Throughput…`` part."""
    text = DOCS.read_text()
    head = part.split("\n", 1)[0]
    if head in text:
        start = text.index(head)
        nxt = text.find("\n#", start + len(head))
        end = len(text) if nxt < 0 else nxt + 1
    else:
        anchor = text.index(SECTION)
        nxt = text.find("\n## ", anchor + len(SECTION))
        start = end = len(text) if nxt < 0 else nxt + 1
    DOCS.write_text(text[:start] + part + text[end:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", type=int, default=200)
    ap.add_argument("--diffs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    ap.add_argument(
        "--throughput",
        action="store_true",
        help="only the throughput vs fresh copy + cold build + tests, fused and staged, on the "
        "generated workspace, the sample and mirage/eqaf (docs: its own part)",
    )
    ap.add_argument(
        "--fused-only",
        action="store_true",
        help="only time fused vs staged typecheck+build on one worker (docs not rewritten)",
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.throughput:
        rows, up0, up1 = throughput.run(args.modules, args.diffs, args.seed)
        command = ".venv/bin/python benchmarks/bench_ces.py --throughput"
        if args.modules != 200 or args.diffs != 12:
            command += f" --modules {args.modules} --diffs {args.diffs}"
        part = throughput.render(rows, up0, up1, command)
        print(part)
        if not args.no_docs:
            write_throughput_docs(part)
        return 0 if all(r["same"] for r in rows) else 1
    if args.fused_only:
        print(fused_vs_staged(args.modules, args.diffs, args.seed), flush=True)
        return 0
    result = run(args.modules, args.diffs, args.seed)
    command = ".venv/bin/python benchmarks/bench_ces.py"
    if args.modules != 200 or args.diffs != 12:
        command += f" --modules {args.modules} --diffs {args.diffs}"
    section = render(result, command)
    print(section)
    if not args.no_docs:
        write_docs(section)
    return 1 if result["wrong"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
