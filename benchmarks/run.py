"""Run every benchmark (``benchmarks/bench_*.py``), one after another, each in its own process.

    .venv/bin/python benchmarks/run.py            # all
    .venv/bin/python benchmarks/run.py diffs ces  # some, by name

Each benchmark prints its ratios and rewrites its own section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    wanted = set(argv)
    if wanted:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
        missing = wanted - {s.stem.removeprefix("bench_") for s in scripts}
        if missing:
            names = ", ".join(
                s.stem.removeprefix("bench_") for s in sorted(HERE.glob("bench_*.py"))
            )
            print(f"Unknown benchmark(s) {', '.join(sorted(missing))}. Available: {names}")
            return 2
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)])
        print(f"== {script.name}: exit {rc} after {time.monotonic() - start:.0f} s", flush=True)
        if rc:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
