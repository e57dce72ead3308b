"""Snapshotter performance (issue 2), ratios measured side by side in one run:

1. an unchanged snapshot of a 20,000-file git workspace vs ``git status --porcelain`` on the
   same tree (goal ≤ 1.0), and with 10 changed files (goal ≤ 1.5×); medians of interleaved
   rounds; the snapshot is the public ``take_snapshot()`` call (opens the store each time);
2. store growth per snapshot (10 changed files each) vs the zlib-compressed size of the changed
   files (goal ≤ 1.2×), after the periodic packing the daemon does (``repack_every``), and
   before it (loose objects) for reference;
3. daemon CPU at the default 20 s interval with no changes (goal < 0.5 % of one core): a real
   daemon process runs with a shortened interval; its CPU time (its own + its git children's,
   from /proc) over a window divided by the number of ticks is the cost of one tick, scaled to
   one tick per 20 s.

    .venv/bin/python benchmarks/bench_snapshot.py [--files 20000] [--window 20] [--no-docs]

The build probe is ``none`` (no build), so only the snapshotter is measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from bactrian.snapshot import SnapshotConfig, open_store, take_snapshot
from bactrian.snapshot.daemon import start_daemon, stop_daemon

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Snapshotter"
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}


def make_workspace(ws: Path, n_files: int, rng: random.Random) -> list[Path]:
    """``n_files`` OCaml-like modules, 100 per directory, log-normal line counts (median ~37
    lines, ~2.2 KB), committed in a git repository."""
    files = []
    per_dir = 100
    for i in range(n_files):
        d = ws / f"lib{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir(parents=True)
        p = d / f"mod{i % per_dir:03d}.ml"
        body = "".join(
            f"let f{j} x y = if x > {rng.randint(0, 999)} then x + y * {j} else y - x\n"
            for j in range(min(400, max(5, int(rng.lognormvariate(3.6, 0.7)))))
        )
        p.write_text(f"(* module {i} *)\n{body}")
        files.append(p)
    (ws / ".gitignore").write_text("_build/\n*.log\n")
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    subprocess.run(["git", "add", "-A"], cwd=ws, check=True, env=GIT_ENV)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=ws, check=True, env=GIT_ENV)
    return files


def edit(files: list[Path], rng: random.Random, k: int = 10) -> list[Path]:
    chosen = rng.sample(files, k)
    for p in chosen:
        lines = p.read_text().splitlines(keepends=True)
        at = rng.randrange(1, len(lines) + 1)
        lines.insert(at, f"let edit_{rng.randrange(10**9)} = {rng.randrange(1000)}\n")
        p.write_text("".join(lines))
    return chosen


def paired(ours: list[float], ref: list[float]) -> float:
    """Median of per-round ratios: each round times both sides back to back, so load that
    drifts on a shared machine hits both sides of a ratio alike."""
    return statistics.median(a / b for a, b in zip(ours, ref, strict=True))


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def git_status(ws: Path) -> None:
    subprocess.run(["git", "status", "--porcelain"], cwd=ws, check=True, stdout=subprocess.DEVNULL)


def is_stat_cache(p: Path) -> bool:
    """The git index (split: ``index`` + ``repo.git/sharedindex.*``) is the stat cache and
    ``trees.sqlite`` the tree cache (the last snapshot's raw trees): their size follows the
    tree (one entry per file / directory), rewritten in place, not growing per snapshot."""
    return p.name == "index" or p.name.startswith(("sharedindex.", "trees.sqlite"))


def store_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not is_stat_cache(p))


def cache_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and is_stat_cache(p))


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime stime cutime cstime are fields 14-17 (1-based); after "pid (comm)" they start at 11
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def run(n_files: int, rounds: int, window_s: float) -> dict[str, float]:
    rng = random.Random(2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    try:
        ws = tmp / "ws"
        ws.mkdir()
        t0 = time.perf_counter()
        files = make_workspace(ws, n_files, rng)
        tree_mb = sum(p.stat().st_size for p in files) / 1e6
        print(f"workspace: {n_files} files, {tree_mb:.0f} MB in {time.perf_counter() - t0:.1f} s")
        cfg = SnapshotConfig(probe="none", store_dir=tmp / "store", interval_s=0.5)
        first = timed(lambda: take_snapshot(ws, config=cfg))
        print(f"first snapshot (reads every file, packs the store): {first:.2f} s", flush=True)
        for _ in range(3):  # warm both sides
            git_status(ws)
            take_snapshot(ws, config=cfg)

        git_t, snap_t = [], []
        for _ in range(rounds):
            git_t.append(timed(lambda: git_status(ws)))
            snap_t.append(timed(lambda: take_snapshot(ws, config=cfg)))
        unchanged = paired(snap_t, git_t)
        print(
            f"unchanged: snapshot {statistics.median(snap_t) * 1e3:.1f} ms, git status "
            f"{statistics.median(git_t) * 1e3:.1f} ms, ratio {unchanged:.2f}",
            flush=True,
        )

        store = open_store(ws, cfg)
        store.maintain()
        size0 = store_bytes(store.root)
        git_c, snap_c, compressed = [], [], []
        for _ in range(rounds):
            changed = edit(files, rng)
            compressed.append(sum(len(zlib.compress(p.read_bytes())) for p in changed))
            git_c.append(timed(lambda: git_status(ws)))
            snap_c.append(timed(lambda: take_snapshot(ws, config=cfg)))
        loose = store_bytes(store.root)
        store.maintain()
        packed = store_bytes(store.root)
        changed_ratio = paired(snap_c, git_c)
        per_change = statistics.mean(compressed)
        growth = (packed - size0) / rounds
        growth_loose = (loose - size0) / rounds
        print(
            f"10 changed: snapshot {statistics.median(snap_c) * 1e3:.1f} ms (mean "
            f"{statistics.mean(snap_c) * 1e3:.1f}), git status "
            f"{statistics.median(git_c) * 1e3:.1f} ms (mean {statistics.mean(git_c) * 1e3:.1f}), "
            f"ratio {changed_ratio:.2f}",
            flush=True,
        )
        print(
            f"growth/snapshot: {growth:.0f} B packed ({growth / per_change:.2f}x), "
            f"{growth_loose:.0f} B loose ({growth_loose / per_change:.2f}x); compressed "
            f"changed files {per_change:.0f} B",
            flush=True,
        )
        cache = cache_bytes(store.root)
        store.close()

        st = start_daemon(ws, cfg)
        assert st.pid is not None
        time.sleep(2 * cfg.interval_s)
        c0, w0 = proc_cpu_s(st.pid), time.monotonic()
        time.sleep(window_s)
        c1, w1 = proc_cpu_s(st.pid), time.monotonic()
        stop_daemon(ws, cfg)
        ticks = (w1 - w0) / cfg.interval_s
        per_tick = (c1 - c0) / ticks
        cpu_pct = 100 * per_tick / 20.0
        print(
            f"daemon: {c1 - c0:.2f} s CPU over {w1 - w0:.1f} s ({ticks:.0f} ticks at "
            f"{cfg.interval_s} s) = {per_tick * 1e3:.1f} ms/tick → {cpu_pct:.3f} % of a core "
            "at 20 s",
            flush=True,
        )
        return {
            "files": n_files,
            "first_s": first,
            "unchanged_ms": statistics.median(snap_t) * 1e3,
            "git_unchanged_ms": statistics.median(git_t) * 1e3,
            "unchanged_ratio": unchanged,
            "changed_ms": statistics.median(snap_c) * 1e3,
            "changed_mean_ms": statistics.mean(snap_c) * 1e3,
            "git_changed_mean_ms": statistics.mean(git_c) * 1e3,
            "git_changed_ms": statistics.median(git_c) * 1e3,
            "changed_ratio": changed_ratio,
            "growth_b": growth,
            "growth_loose_b": growth_loose,
            "compressed_b": per_change,
            "growth_ratio": growth / per_change,
            "growth_loose_ratio": growth_loose / per_change,
            "tick_ms": per_tick * 1e3,
            "cpu_pct": cpu_pct,
            "window_s": w1 - w0,
            "cache_b": cache,
            "tree_mb": tree_mb,
            "store_b": packed,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def render(r: dict[str, float], rounds: int) -> str:
    ok = lambda good: "✅" if good else "❌"  # noqa: E731
    return f"""{SECTION}

Command: `.venv/bin/python benchmarks/bench_snapshot.py` — {time.strftime("%Y-%m-%d")},
{platform.node()} ({os.cpu_count()} cores, shared), git {subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1]},
{int(r["files"])}-file generated git workspace ({r["tree_mb"]:.0f} MB, median file ~2.2 KB), build probe `none`,
{rounds} interleaved rounds (ratio = median of per-round ratios; times = medians); each
"changed" round inserts a line into 10 random files.

| measure | bactrian | reference | ratio | goal |
|---|---|---|---|---|
| snapshot, tree unchanged | {r["unchanged_ms"]:.1f} ms | `git status --porcelain` {r["git_unchanged_ms"]:.1f} ms | {r["unchanged_ratio"]:.2f} | ≤ 1.0 {ok(r["unchanged_ratio"] <= 1.0)} |
| snapshot, 10 files changed | {r["changed_ms"]:.1f} ms | `git status --porcelain` {r["git_changed_ms"]:.1f} ms | {r["changed_ratio"]:.2f} | ≤ 1.5 {ok(r["changed_ratio"] <= 1.5)} |
| store growth per snapshot (packed) | {r["growth_b"]:.0f} B | zlib of the 10 changed files {r["compressed_b"]:.0f} B | {r["growth_ratio"]:.2f} | ≤ 1.2 {ok(r["growth_ratio"] <= 1.2)} |
| store growth per snapshot (before packing: small packs, loose commits) | {r["growth_loose_b"]:.0f} B | same | {r["growth_loose_ratio"]:.2f} | (reference) |
| daemon CPU, no changes, 20 s interval | {r["tick_ms"]:.1f} ms CPU per tick | one core | {r["cpu_pct"]:.3f} % | < 0.5 % {ok(r["cpu_pct"] < 0.5)} |

How: the snapshot column is the public `take_snapshot()` (it opens the store each call); the
daemon keeps its store open, so its ticks are cheaper. Means of the changed rounds, which
include the occasional `git write-tree` cross-check (every 100 directories written
in-process) and the one tree-cache refill after packing: snapshot {r["changed_mean_ms"]:.1f} ms,
`git status` {r["git_changed_mean_ms"]:.1f} ms. Growth is the store directory's byte
count (objects, refs, SQLite, logs) after the packing the daemon does every `repack_every`
snapshots, over {rounds} snapshots; the git index — the stat cache, one entry per file, rewritten
in place rather than growing — and the tree cache `trees.sqlite` (the last snapshot's raw
trees) are left out ({r["cache_b"] / 1e6:.1f} MB together for this tree; the whole
store is {r["store_b"] / 1e6:.1f} MB besides). Daemon CPU: a real `bactrian snapshot start` process with a
0.5 s interval on the unchanged tree, its CPU (own + waited-for git children, `/proc/PID/stat`)
over {r["window_s"]:.0f} s divided by the ticks in that window = CPU per tick, scaled to one tick
per 20 s. The first snapshot of the tree (reads all files, then packs) took {r["first_s"]:.1f} s.

Profile of the 10-changed snapshot before the in-process path (same tree, quiet machine):
`git status` ~25 ms, `git update-index` ~8 ms, `git write-tree` ~10 ms (its cache-tree
update alone 3–9 ms), Python ~5 ms; writing 21 loose objects cost ~0.5 ms each in file
creation on this disk. Now: `git status` + one `git update-index --index-info`; blobs and
trees are hashed and packed in-process into one small pack (see docs/snapshot.md).
"""


def write_docs(text: str) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    content = doc.read_text()
    start = content.index(SECTION)
    nxt = content.find("\n## ", start + 1)
    end = len(content) if nxt < 0 else nxt + 1
    doc.write_text(content[:start] + text.rstrip() + "\n\n" + content[end:].lstrip("\n"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--window", type=float, default=20.0, help="daemon CPU window, seconds")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = ap.parse_args(argv)
    result = run(args.files, args.rounds, args.window)
    text = render(result, args.rounds)
    print(text)
    if not args.no_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
