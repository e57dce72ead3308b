"""Build probes: what a probe adds on top of the build it runs, measured side by side.

    .venv/bin/python benchmarks/bench_build.py [--modules 60] [--rounds 7]

On one generated dune workspace (``_ocaml_gen``, already built), interleaved rounds of:

* ``bare``    — ``dune build @check --root . --display quiet`` run directly (no-op build);
* ``probe``   — the ``dune`` probe forced to build (``tree_id=None``): nice/ionice, the flock,
  the process group, parsing — the ratio probe/bare is its overhead;
* ``cached``  — the probe asked again for the same ``tree_id`` (no build);
* ``watch``   — the ``dune-watch`` probe reading a live ``bactrian build watch`` (no build);
* ``parse``   — parsing a 1 MB red-build log.

Ratios are medians of per-round ratios against ``bare`` of the same round. Prints a Markdown
section for ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks._ocaml_gen import generate  # noqa: E402

from bactrian.buildstatus.diagnostics import parse_ocaml  # noqa: E402
from bactrian.buildstatus.probe import BuildConfig, choose_probe  # noqa: E402
from bactrian.buildstatus.watch import WatchProbe, read_status, watcher_alive  # noqa: E402

RED_LOG = """File "src/m001.ml", line 12, characters 4-19:
12 | let x = undefined_thing 3
         ^^^^^^^^^^^^^^^
Error: Unbound value undefined_thing
File "src/m002.ml", lines 3-5, characters 19-6:
3 | ...................(fun x ->
4 |   x + 1,
5 |   "a")
Error: This expression should not be a function, the expected type is
       int list
File "src/m003.ml", line 1, characters 4-13:
1 | let unused_fn x =
        ^^^^^^^^^
Error (warning 32 [unused-value-declaration]): unused value unused_fn.
File "src/m004.ml", line 5, characters 37-38:
5 | let k (x : int list) : string list = x
                                         ^
Error: This expression has type int list
       but an expression was expected of type string list
       Type int is not compatible with type string
"""


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bare(ws: Path) -> None:
    env = dict(os.environ, DUNE_CACHE="disabled")
    subprocess.run(
        ["dune", "build", "@check", "--root", ".", "--display", "quiet"],
        cwd=ws,
        env=env,
        check=True,
        capture_output=True,
    )


def run(modules: int, rounds: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-build-"))
    os.environ["BACTRIAN_DATA_DIR"] = str(tmp / "data")
    try:
        ws = tmp / "ws"
        generate(ws, modules=modules, seed=0)
        bare(ws)  # warm: everything built
        probe = choose_probe(ws, probe="dune", config=BuildConfig())
        log = RED_LOG * (1_000_000 // len(RED_LOG))
        ratios: dict[str, list[float]] = {"probe": [], "cached": [], "parse": []}
        bare_times = []
        for _ in range(rounds):
            b = _timed(lambda: bare(ws))
            bare_times.append(b)
            res = probe.run(ws, None)
            assert res.state.value == "green", res.log
            ratios["probe"].append(_timed(lambda: probe.run(ws, None)) / b)
            probe.run(ws, "t")
            ratios["cached"].append(_timed(lambda: probe.run(ws, "t")) / b)
            ratios["parse"].append(_timed(lambda: parse_ocaml(log)) / b)
        # watch: a live wrapper on a copy (a bare dune in the watched tree would fight it)
        wws = tmp / "wws"
        shutil.copytree(ws, wws, ignore=shutil.ignore_patterns("_build"))
        wrapper = subprocess.Popen(
            [sys.executable, "-m", "bactrian.buildstatus.cli", "watch", "-C", str(wws)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                s = read_status(wws)
                if watcher_alive(wws) and s and s.state in ("green", "red"):
                    break
                time.sleep(0.1)
            wp = WatchProbe(wait_s=0, stale_s=0)
            assert wp.run(wws).state.value == "green"
            ratios["watch"] = [_timed(lambda: wp.run(wws)) / b for b in bare_times]
        finally:
            wrapper.send_signal(signal.SIGTERM)
            wrapper.wait(timeout=30)
        out = {k: statistics.median(v) for k, v in ratios.items()}
        out["bare_s"] = statistics.median(bare_times)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def render(r: dict[str, float], modules: int, rounds: int, command: str) -> str:
    return (
        "## Build probes\n\n"
        f"`{command}` — {platform.node() or 'this machine'}, {platform.machine()}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; generated workspace of {modules} "
        f"modules, already built; medians of {rounds} interleaved rounds, each ratio against a "
        "bare no-op `dune build @check` of the same round.\n\n"
        "| measurement | ratio to bare no-op dune build |\n|---|---|\n"
        f"| dune probe, forced build (nice/ionice, lock, /proc watch check, parsing) | "
        f"{r['probe']:.2f} |\n"
        f"| dune probe, same tree_id (cached, no build) | {r['cached']:.4f} |\n"
        f"| dune-watch probe reading a live `bactrian build watch` | {r['watch']:.4f} |\n"
        f"| parsing a 1 MB red build log | {r['parse']:.2f} |\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--modules", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    if not shutil.which("dune"):
        print("dune is not installed (apt-get install ocaml-dune)")
        return 1
    r = run(args.modules, args.rounds)
    command = ".venv/bin/python benchmarks/bench_build.py" + (
        f" --modules {args.modules} --rounds {args.rounds}" if argv else ""
    )
    print(render(r, args.modules, args.rounds, command))
    print(f"(bare no-op dune build: median {r['bare_s'] * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
