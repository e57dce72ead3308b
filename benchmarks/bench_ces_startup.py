"""What one ``bactrian ces eval`` process costs before judging: alone (it reuses the warm trees
left on disk, but still loads the local backend, re-verifies its worker tree and checks the
sandbox) against the same command when ``[ces] url`` names a running ``bactrian ces serve``
(the process only sends the diff). The diff fails at ``apply`` (a hunk that does not match), so
what is timed is the process, not a build.

    .venv/bin/python benchmarks/bench_ces_startup.py [--modules 20] [--runs 5]

Prints a table (median wall time per ``ces eval`` process, and the ratio) for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _ocaml_gen import generate  # noqa: E402

BAD = "--- a/src/m000.ml\n+++ b/src/m000.ml\n@@ -1,1 +1,1 @@\n-no such line here\n+nor here\n"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


CPU: list[float] = []


def _eval(base: Path, diff: Path, env: dict[str, str]) -> float:
    c0 = _cpu()
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bactrian.cli",
            "ces",
            "eval",
            "--workers",
            "1",
            str(base),
            str(diff),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - t0
    CPU.append(_cpu() - c0)  # the eval process and its children (the sandbox), not the server
    assert done.returncode == 2 and "furthest=None" in done.stdout, done.stdout + done.stderr
    return took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = root / "ws"
        generate(base, modules=args.modules, seed=0)
        diff = root / "bad.diff"
        diff.write_text(BAD)
        env = {
            **os.environ,
            "BACTRIAN_DATA_DIR": str(root / "data"),
            "XDG_CONFIG_HOME": str(root / "config"),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        env.pop("BACTRIAN_CONFIG", None)
        env.pop("BACTRIAN_CES_URL", None)
        _eval(base, diff, env)  # warms the trees on disk once
        CPU.clear()
        local = [_eval(base, diff, env) for _ in range(args.runs)]
        local_cpu = statistics.median(CPU)
        port = _port()
        server_env = {**env, "BACTRIAN_DATA_DIR": str(root / "server-data")}
        server = subprocess.Popen(
            [sys.executable, "-m", "bactrian.cli", "ces", "serve", "--port", str(port),
             "--workers", "1"],
            env=server_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "ces serve did not come up"
                time.sleep(0.2)
            remote_env = {**env, "BACTRIAN_CES_URL": url}
            _eval(base, diff, remote_env)  # the server warms its pool once
            CPU.clear()
            remote = [_eval(base, diff, remote_env) for _ in range(args.runs)]
            remote_cpu = statistics.median(CPU)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(60)
    a, b = statistics.median(local), statistics.median(remote)
    print(
        f"`ces eval` process, a diff failing at apply, {args.modules}-module workspace, "
        f"median of {args.runs}:\n\n"
        "| how | wall s per process | CPU s per process (with its sandboxed children) |\n"
        "|---|---|---|\n"
        f"| alone (warm trees on disk) | {a:.2f} | {local_cpu:.2f} |\n"
        f"| through a running `ces serve` (`[ces] url`) | {b:.2f} | {remote_cpu:.2f} |\n\n"
        f"ratio alone / through the service: wall {a / b:.2f}x, CPU {local_cpu / remote_cpu:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
