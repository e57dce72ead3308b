"""Throughput of the CES against fresh copy + cold build + tests, fused and staged side by side
(``benchmarks/bench_ces.py --throughput``), on three workspaces: the generated 200-module one,
the bundled sample and one real public repository (mirage/eqaf, from a local mirror)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from _ocaml_gen import generate, make_diffs
from bench_ces_determinism import make_jobs

from bactrian import sample
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, Job, Verdict
from bactrian.ces.local import LocalBackend
from bactrian.diffs.render import render_diff

COLD_ENV = {**os.environ, "DUNE_CACHE": "disabled"}
EQAF_MIRROR = Path("/work/.mirror/mirage+eqaf/repo")
# eqaf's own package only: its other directories need libraries Debian does not ship
# (crowbar, base64, cstruct, bechamel), as `bactrian doctor` finds
EQAF_STAGES = {
    "typecheck": "dune build --root . --only-packages eqaf @lib/check @test/check 2>&1",
    "build": "dune build --root . --only-packages eqaf @lib/all @test/all 2>&1",
    "test": "dune build --root . --only-packages eqaf --force @test/runtest 2>&1",
}
EQAF_EDITS = {  # lib/eqaf.ml
    "green": ("let r = select_int (v + 1) 0 1 in", "let r = select_int (1 + v) 0 1 in"),
    "type-error": ("let r = select_int (v + 1) 0 1 in", "let r = select_int (v +. 1) 0 1 in"),
    "parse-error": ("let r = select_int (v + 1) 0 1 in", "let r = select_int (v + 1 0 1 in"),
    "failing-tests": ("let r = select_int (v + 1) 0 1 in", "let r = select_int (v + 1) 1 0 in"),
    "green-2": (
        "String.init (2 * String.length rawbytes)",
        "String.init (String.length rawbytes * 2)",
    ),
}


@dataclass
class Workspace:
    name: str
    src: Path
    diffs: list[str]
    stages: dict[str, str] = field(default_factory=dict)


def sh(cmd: str | list[str], cwd: Path, stdin: str | None = None) -> int:
    """Run ``cmd`` in ``cwd`` with dune's cache off, quietly; its exit status."""
    return subprocess.run(
        cmd,
        cwd=cwd,
        shell=isinstance(cmd, str),
        input=stdin,
        text=True,
        capture_output=True,
        env=COLD_ENV,
    ).returncode


def workspaces(scratch: Path, modules: int, n_diffs: int, seed: int) -> list[Workspace]:
    gen = scratch / "gen"
    ws = generate(gen, modules=modules, seed=seed)
    out = [
        Workspace(
            f"generated, {modules} modules",
            gen,
            [d for _, _, d in make_diffs(ws, n_diffs, seed=seed + 1)],
        )
    ]
    smp = scratch / "sample"
    sample.copy_workspace(smp)
    out.append(Workspace("the bundled sample", smp, list(make_jobs(smp).values()) * 2))
    if EQAF_MIRROR.is_dir():
        eq = scratch / "eqaf"
        eq.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(EQAF_MIRROR), "archive", "HEAD"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(eq)], input=archive, check=True)
        text = (eq / "lib/eqaf.ml").read_text()
        diffs = []
        for old, new in EQAF_EDITS.values():
            assert old in text, old
            diffs.append(
                render_diff({"lib/eqaf.ml": text}, {"lib/eqaf.ml": text.replace(old, new, 1)})
            )
        out.append(Workspace("mirage/eqaf (real, public)", eq, diffs, dict(EQAF_STAGES)))
    return out


def naive_one(w: Workspace, scratch: Path, diff: str) -> None:
    """Fresh copy, apply, cold build, tests (the same commands the CES runs)."""
    tree = Path(tempfile.mkdtemp(dir=scratch))
    try:
        shutil.copytree(w.src, tree, dirs_exist_ok=True, ignore=shutil.ignore_patterns("_build"))
        if sh(["patch", "-p1", "-s", "--batch"], tree, diff) != 0:
            return
        build = w.stages.get("build", "dune build --root . 2>&1")
        test = w.stages.get("test", "dune runtest --root . 2>&1")
        if sh(build, tree) == 0:
            sh(test, tree)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _judge(be: LocalBackend, base: BaseSpec, diffs: list[str]) -> tuple[float, list[Verdict]]:
    t0 = time.monotonic()
    verdicts = be.evaluate([Job(base, d) for d in diffs])
    return time.monotonic() - t0, verdicts


def measure(w: Workspace, scratch: Path, workers: int = 2, rounds: int = 2) -> dict[str, object]:
    base = BaseSpec(str(w.src), stages=w.stages)
    pools = {
        fuse: LocalBackend(
            CESConfig(workers=workers, work_dir=scratch / f"{w.src.name}-{fuse}", fuse_stages=fuse)
        )
        for fuse in (True, False)
    }
    try:
        for be in pools.values():
            be.warm(base, workers)
        times: dict[bool, list[float]] = {True: [], False: []}
        prints: dict[bool, list[dict[str, object]]] = {}
        for _ in range(rounds):  # interleaved: machine noise hits both modes
            for fuse in (False, True):
                took, verdicts = _judge(pools[fuse], base, w.diffs)
                times[fuse].append(took)
                prints[fuse] = [v.fingerprint() for v in verdicts]
        furthest = [str(p["furthest"]) for p in prints[True]]
    finally:
        for be in pools.values():
            be.close()
    t0 = time.monotonic()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(lambda d: naive_one(w, scratch, d), w.diffs))
    naive = time.monotonic() - t0
    fused, staged = min(times[True]), min(times[False])
    return {
        "name": w.name,
        "diffs": len(w.diffs),
        "naive_s": naive,
        "fused_s": fused,
        "staged_s": staged,
        "speedup_fused": naive / fused,
        "speedup_staged": naive / staged,
        "fused_vs_staged": staged / fused,
        "same": prints[True] == prints[False],
        "furthest": furthest,
    }


def run(modules: int, n_diffs: int, seed: int) -> tuple[list[dict[str, object]], str, str]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-ces-tp-"))
    up0 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    try:
        rows = []
        for w in workspaces(scratch, modules, n_diffs, seed):
            print(f"{w.name}: {len(w.diffs)} diffs", flush=True)
            row = measure(w, scratch)
            print(row, flush=True)
            rows.append(row)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    up1 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return rows, up0, up1


def render(rows: list[dict[str, object]], up0: str, up1: str, command: str) -> str:
    def f(r: dict[str, object], k: str) -> float:
        return float(r[k])  # type: ignore[arg-type]

    lines = "\n".join(
        f"| {r['name']} | {r['diffs']} | {f(r, 'naive_s'):.1f} s | {f(r, 'staged_s'):.1f} s | "
        f"{f(r, 'fused_s'):.1f} s | **{f(r, 'speedup_fused'):.1f}×** | "
        f"{f(r, 'speedup_staged'):.1f}× | {f(r, 'fused_vs_staged'):.2f}× | "
        f"{'yes' if r['same'] else '**no**'} |"
        for r in rows
    )
    return f"""### Throughput, fused and staged, on three workspaces (issue 9)

Command: `{command}`. `uptime` at the start: `{up0}`; at the end: `{up1}` (2 cores shared by
about five engineers: read the ratios, not the seconds). Per workspace: two warm 2-worker pools
(bubblewrap, overlay isolation), one fused (`[ces] fuse_stages = true`, the default) and one
staged, judging the same diffs interleaved twice (best of two), then the same diffs the naive
way — fresh copy, apply, cold build, tests, the same commands, two at a time. Warming is not
counted (paid once per base).

| workspace | diffs | naive | CES staged | CES fused | naive ÷ fused (goal ≥ 20× on the generated one) | naive ÷ staged | staged ÷ fused | same verdicts |
|---|---|---|---|---|---|---|---|---|
{lines}

"""
