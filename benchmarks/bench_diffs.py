"""Benchmark for ``bactrian.diffs``: how often the lenient ladder, strict ``git apply`` and
``patch --fuzz=3`` apply perturbed diffs correctly or to the WRONG place, and how fast a
100-line, 5-file diff applies to a 20,000-file tree next to ``git apply``.

    .venv/bin/python benchmarks/bench_diffs.py            # full run, rewrites docs section
    .venv/bin/python benchmarks/bench_diffs.py --quick    # smaller corpus, no docs update

The corpus starts from real edits: every modified text file in this repository's own git
history, topped up with edits made at random places of the Python standard library's own
sources (real code, so real repetition and indentation). Each edit's diff is then perturbed the
way models and stale diffs break them:

    wrong_line_numbers    every @@ start moved by 3-30 lines
    counts_missing        bare ``@@`` headers (no numbers)
    whitespace_changed    indentation of context/removed lines changed, trailing blanks added
    context_drifted       the file moved on: 3 lines added on top, one context line edited
    context_line_dropped  one context line left out of a hunk (counts not fixed)
    combined              whitespace_changed + counts_missing + context_drifted at once
    duplicated_block      (ambiguous) the hunk's lines also occur elsewhere, bare ``@@``

A case is *ambiguous* when the diff does not say where it goes: a hunk whose lines occur more
than once in the file while its line numbers are missing or wrong, the duplicated_block cases,
and a dropped context line next to an insertion (the insertion may go on either side of it).
Correct means the result equals the intended file byte for byte; wrong place means the tool
reported success but the result differs.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bactrian.diffs import apply_patch, apply_to_files, parse_patch, render_diff  # noqa: E402
from bactrian.diffs.ladder import norm  # noqa: E402
from bactrian.diffs.model import Hunk, Patch  # noqa: E402
from bactrian.diffs.render import render_patch  # noqa: E402

TOOLS = ("ladder", "strict", "git apply", "patch --fuzz=3")


@dataclass
class Case:
    kind: str
    path: str
    base: str
    diff: str
    want: str
    ambiguous: bool


@dataclass
class Tally:
    total: int = 0
    correct: int = 0
    wrong: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [n, correct, wrong]


# --- real edits ----------------------------------------------------------------------------


def history_edits(limit: int) -> list[tuple[str, str, str]]:
    """(path, old, new) for modified text files in this repository's history."""
    try:
        revs = subprocess.run(
            ["git", "rev-list", "--no-merges", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.split()
    except OSError:
        return []
    out = []
    for rev in revs:
        names = subprocess.run(
            ["git", "diff", "--name-status", "--no-renames", f"{rev}^", rev],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout
        for line in names.splitlines():
            status, _, path = line.partition("\t")
            if status != "M" or not re.search(r"\.(py|ml|mli|md|toml)$", path):
                continue
            old = _show(f"{rev}^:{path}")
            new = _show(f"{rev}:{path}")
            if old is None or new is None or old == new:
                continue
            out.append((path, old, new))
            if len(out) >= limit:
                return out
    return out


def _show(spec: str) -> str | None:
    run = subprocess.run(["git", "show", spec], cwd=ROOT, capture_output=True)
    if run.returncode:
        return None
    try:
        return run.stdout.decode("utf-8")
    except UnicodeDecodeError:
        return None


def stdlib_edits(n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """(path, old, new) edits at random places of standard-library sources."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    sources = sorted(p for p in lib.glob("*.py") if 3_000 < p.stat().st_size < 120_000)
    out = []
    while len(out) < n:
        src = rng.choice(sources)
        old = src.read_text(encoding="utf-8", errors="replace")
        lines = old.splitlines(keepends=True)
        if len(lines) < 80:
            continue
        sites = sorted(rng.sample(range(10, len(lines) - 10), rng.randint(1, 3)), reverse=True)
        if any(a - b < 15 for a, b in zip(sites, sites[1:], strict=False)):
            continue
        for i in sites:
            indent = re.match(r"[ \t]*", lines[i]).group(0)  # type: ignore[union-attr]
            op = rng.choice(["change", "insert", "delete", "replace"])
            if op in ("change", "replace") and lines[i].strip():
                lines[i] = lines[i].rstrip("\n") + "  # edited\n"
            if op in ("insert", "replace"):
                lines[i + 1 : i + 1] = [
                    f"{indent}trace_{i}_{k} = {k}\n" for k in range(rng.randint(1, 3))
                ]
            if op == "delete":
                del lines[i : i + rng.randint(1, 2)]
        new = "".join(lines)
        if new != old:
            out.append((f"lib/{src.name}", old, new))
    return out


# --- perturbations -------------------------------------------------------------------------


def _occurs(text: str, hunk: Hunk) -> int:
    keys = [norm(x) for x in text.splitlines(keepends=True)]
    want = [norm(x) for x in hunk.old_lines]
    if not want:
        return 0
    return sum(1 for p in range(len(keys) - len(want) + 1) if keys[p : p + len(want)] == want)


def _repeated(text: str, patch: Patch) -> bool:
    return any(_occurs(text, h) > 1 for fp in patch.files for h in fp.hunks)


def _clone(patch: Patch) -> Patch:
    return parse_patch(render_patch(patch))


def perturb(path: str, old: str, new: str, rng: random.Random) -> list[Case]:
    diff = render_diff({path: old}, {path: new})
    base = parse_patch(diff)
    if not base.files or sum(len(h.lines) for h in base.files[0].hunks) > 120:
        return []
    cases = [Case("clean", path, old, diff, new, False)]

    p = _clone(base)
    for h in p.files[0].hunks:
        assert h.old_start is not None and h.new_start is not None
        d = rng.choice([-1, 1]) * rng.randint(3, 30)
        h.old_start = max(1, h.old_start + d)
        h.new_start = max(1, h.new_start + d)
    cases.append(Case("wrong_line_numbers", path, old, render_patch(p), new, _repeated(old, p)))

    p = _clone(base)
    for h in p.files[0].hunks:
        h.old_start = h.old_count = h.new_start = h.new_count = None
    cases.append(Case("counts_missing", path, old, render_patch(p), new, _repeated(old, p)))

    p = _clone(base)
    changed = False
    for h in p.files[0].hunks:
        for k, (tag, text) in enumerate(h.lines):
            if tag == "+" or not text.strip():
                continue
            lead = re.match(r"[ \t]*", text).group(0)  # type: ignore[union-attr]
            body = text[len(lead) :]
            if lead:
                h.lines[k] = (tag, lead.replace("\t", "  ")[: max(0, len(lead) // 2)] + body)
                changed = True
            elif rng.random() < 0.5:
                h.lines[k] = (tag, body.rstrip("\n") + "  \n" if body.endswith("\n") else body)
                changed = True
    if changed:
        cases.append(Case("whitespace_changed", path, old, render_patch(p), new, False))
        # several faults at once: whitespace changed, counts missing, and the file drifted
        for h in p.files[0].hunks:
            h.old_start = h.old_count = h.new_start = h.new_count = None
        for c in _drifted(path, old, new, base, rng):
            cases.append(
                Case("combined", path, c.base, render_patch(p), c.want, _repeated(c.base, p))
            )

    cases += _drifted(path, old, new, base, rng)
    cases += _dropped(path, old, new, base, rng)
    cases += _duplicated(path, old, new, base)
    return cases


def _drifted(path: str, old: str, new: str, base: Patch, rng: random.Random) -> list[Case]:
    """The file moved on after the diff was made: lines added on top, a context line edited."""
    h = rng.choice(base.files[0].hunks)
    ctx = [t for tag, t in h.lines if tag == " " and len(t.strip()) >= 4]
    if not ctx:
        return []
    line = rng.choice(ctx)
    if old.count(line) != 1 or new.count(line) != 1:
        return []
    edited = line.rstrip("\n") + "  # drifted\n"
    top = "# one\n# two\n# three\n"
    base_file = top + old.replace(line, edited)
    want = top + new.replace(line, edited)
    return [Case("context_drifted", path, base_file, render_patch(base), want, False)]


def _dropped(path: str, old: str, new: str, base: Patch, rng: random.Random) -> list[Case]:
    """One context line left out of a hunk; the @@ header is left as it was (models do not
    fix counts)."""
    hunks = base.files[0].hunks
    hi = rng.randrange(len(hunks))
    h = hunks[hi]
    ctx = [k for k, (tag, _) in enumerate(h.lines) if tag == " "]
    if len(ctx) < 3:
        return []
    k = rng.choice(ctx)
    edge = k == 0 or k == len(h.lines) - 1
    near_add = not edge and any(h.lines[j][0] == "+" for j in (k - 1, k + 1))
    text = render_patch(base).splitlines(keepends=True)
    seen = -1
    for n, line in enumerate(text):
        if line.startswith("@@"):
            seen += 1
            if seen == hi:
                del text[n + 1 + k]
                break
    return [Case("context_line_dropped", path, old, "".join(text), new, near_add)]


def _duplicated(path: str, old: str, new: str, base: Patch) -> list[Case]:
    """The first hunk's old lines copied to the end of the file; bare @@: truly ambiguous."""
    p = _clone(base)
    h = p.files[0].hunks[0]
    block = "".join(h.old_lines)
    if not block.strip() or not old.endswith("\n") or not new.endswith("\n"):
        return []
    for hh in p.files[0].hunks:
        hh.old_start = hh.old_count = hh.new_start = hh.new_count = None
    tail = "\n# copy\n" + block
    return [Case("duplicated_block", path, old + tail, render_patch(p), new + tail, True)]


# --- tools -----------------------------------------------------------------------------------


def run_tool(tool: str, case: Case, work: Path) -> str | None:
    """The file after the tool ran, or None when the tool reported failure."""
    if tool in ("ladder", "strict"):
        out, res = apply_to_files({case.path: case.base}, case.diff, lenient=tool == "ladder")
        if not res.ok:
            return None
        data = out.get(case.path)
        return data.decode() if data is not None else ""
    if work.exists():
        shutil.rmtree(work)
    target = work / case.path
    target.parent.mkdir(parents=True)
    target.write_bytes(case.base.encode())
    (work.parent / "p.diff").write_bytes(case.diff.encode())
    if tool == "git apply":
        cmd = ["git", "apply", "--whitespace=nowarn", str(work.parent / "p.diff")]
    else:
        cmd = ["patch", "-p1", "--fuzz=3", "-s", "-f", "--no-backup-if-mismatch", "-r", "-"]
        cmd += ["-i", str(work.parent / "p.diff")]
    run = subprocess.run(cmd, cwd=work, capture_output=True)
    if run.returncode != 0:
        return None
    return target.read_bytes().decode() if target.exists() else ""


def correctness(cases: list[Case]) -> dict[str, dict[bool, Tally]]:
    tallies = {t: {False: Tally(), True: Tally()} for t in TOOLS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        for case in cases:
            for tool in TOOLS:
                got = run_tool(tool, case, work)
                t = tallies[tool][case.ambiguous]
                row = t.by_kind.setdefault(case.kind, [0, 0, 0])
                t.total += 1
                row[0] += 1
                if got is None:
                    continue
                if got == case.want:
                    t.correct += 1
                    row[1] += 1
                else:
                    t.wrong += 1
                    row[2] += 1
    return tallies


# --- speed -----------------------------------------------------------------------------------


def _module(i: int, n: int) -> str:
    return "".join(f"let f{i}_{k} x = x + {k} (* line {k} *)\n" for k in range(n))


def speed(repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        for d in range(200):
            sub = root / f"d{d:03}"
            sub.mkdir(parents=True)
            for f in range(100):
                (sub / f"m{f:03}.ml").write_text(_module(d * 100 + f, 12))
        targets = [f"d{d:03}/m050.ml" for d in (3, 57, 101, 150, 199)]
        old, new = {}, {}
        for t in targets:
            text = _module(int(t[1:4]) * 100 + 50, 60)
            (root / t).write_text(text)
            lines = text.splitlines(keepends=True)
            for at in (8, 40):
                for k in range(at, at + 3):
                    lines[k] = lines[k].replace("x +", "x -")
            old[t], new[t] = text, "".join(lines)
        forward = render_diff(old, new)
        backward = render_diff(new, old)
        n_lines = forward.count("\n")
        for name, text in (("f.diff", forward), ("b.diff", backward)):
            (Path(tmp) / name).write_text(text)
        ours: list[float] = []
        git: list[float] = []
        cli: list[float] = []
        cli_cmd = [sys.executable, "-c", "from bactrian.cli import main; main()", "diffs", "apply"]
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(
                [*cli_cmd, str(root), str(Path(tmp) / "f.diff")], check=True, capture_output=True
            )
            cli.append(time.perf_counter() - t0)
            assert apply_patch(root, backward).ok
            t0 = time.perf_counter()
            assert apply_patch(root, forward).ok
            ours.append(time.perf_counter() - t0)
            assert apply_patch(root, backward).ok
            t0 = time.perf_counter()
            subprocess.run(["git", "apply", str(Path(tmp) / "f.diff")], cwd=root, check=True)
            git.append(time.perf_counter() - t0)
            subprocess.run(["git", "apply", str(Path(tmp) / "b.diff")], cwd=root, check=True)
        files = sum(1 for _ in root.rglob("*.ml"))
    return {
        "ours_ms": statistics.median(ours) * 1000,
        "git_ms": statistics.median(git) * 1000,
        "cli_ms": statistics.median(cli) * 1000,
        "diff_lines": n_lines,
        "tree_files": files,
    }


# --- lenient ladder: hunks per file ------------------------------------------------------


def _many_hunks(n: int, kind: str) -> tuple[str, str]:
    """A file of ``6 n`` lines and a diff with ``n`` bare ``@@`` hunks, one per 6 lines:
    ``bare`` (exact lines, no numbers), ``whitespace`` (context re-indented as well) or
    ``drifted`` (re-indented, and one context line per hunk edited: the fuzzy rung)."""
    lines = [f"let f{i} x = x + {i}\n" for i in range(n * 6)]
    out = ["--- a/m.ml\n", "+++ b/m.ml\n"]
    for h in range(n):
        b = h * 6
        out.append("@@\n")
        for k in (b + 1, b + 2):
            out.append(" " + ("  " if kind != "bare" else "") + lines[k])
        out.append("-" + lines[b + 3])
        out.append("+" + lines[b + 3].replace("+", "-"))
        last = lines[b + 4]
        out.append(" " + (last.replace("x", "y") if kind == "drifted" else last))
    return "".join(lines), "".join(out)


def hunk_scaling(sizes: tuple[int, int] = (1000, 5000)) -> dict[str, list[float]]:
    """Seconds to apply each kind of many-hunk diff leniently, at each size."""
    out: dict[str, list[float]] = {}
    for kind in ("bare", "whitespace", "drifted"):
        for n in sizes:
            text, diff = _many_hunks(n, kind)
            t0 = time.perf_counter()
            _, res = apply_to_files({"m.ml": text}, diff, lenient=True)
            took = time.perf_counter() - t0
            assert res.ok, res.summary()
            out.setdefault(kind, []).append(took)
    return out


# --- report ----------------------------------------------------------------------------------


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "n/a"


def report(
    cases: list[Case],
    tallies: dict[str, dict[bool, Tally]],
    sp: dict,
    sources: str,
    scaling: dict[str, list[float]] | None = None,
    sizes: tuple[int, int] = (1000, 5000),
) -> str:
    unamb = sum(1 for c in cases if not c.ambiguous)
    amb = len(cases) - unamb
    out = [
        f"Corpus: {len(cases)} perturbed single-file diffs from {sources}; "
        f"{unamb} unambiguous, {amb} ambiguous.",
        "",
        "| tool | unambiguous: correct | unambiguous: WRONG place | ambiguous: applied "
        "(guessed) | ambiguous: WRONG place |",
        "|---|---|---|---|---|",
    ]
    for tool in TOOLS:
        u, a = tallies[tool][False], tallies[tool][True]
        out.append(
            f"| {tool} | {_pct(u.correct, u.total)} | {_pct(u.wrong, u.total)} | "
            f"{_pct(a.correct + a.wrong, a.total)} | {_pct(a.wrong, a.total)} |"
        )
    kinds = sorted({c.kind for c in cases if not c.ambiguous})
    out += ["", "Correct share of unambiguous cases by perturbation:", ""]
    out.append("| perturbation | n | " + " | ".join(TOOLS) + " |")
    out.append("|---|---|" + "---|" * len(TOOLS))
    for kind in kinds:
        n = tallies["ladder"][False].by_kind.get(kind, [0, 0, 0])[0]
        row = [_pct(tallies[t][False].by_kind.get(kind, [0, 0, 0])[1], n) for t in TOOLS]
        out.append(f"| {kind} | {n} | " + " | ".join(row) + " |")
    ratio = sp["git_ms"] / sp["ours_ms"] if sp["ours_ms"] else float("nan")
    out += [
        "",
        f"Apply speed: a {sp['diff_lines']}-line, 5-file diff on a {sp['tree_files']}-file tree: "
        f"bactrian `apply_patch` (in process, parse + checks + atomic write) "
        f"{sp['ours_ms']:.2f} ms vs `git apply` (a process) {sp['git_ms']:.2f} ms, median of "
        f"the same run: bactrian is {ratio:.1f}x the speed of git apply. The git figure "
        f"includes starting a process; `bactrian diffs apply` as a process (Python start-up "
        f"and imports included) takes {sp['cli_ms']:.0f} ms "
        f"({sp['cli_ms'] / sp['git_ms']:.1f}x git apply). The CES and the sidecar call the "
        "library in process.",
    ]
    if scaling:
        out += ["", _scaling_table(scaling, sizes)]
    return "\n".join(out)


def _scaling_table(scaling: dict[str, list[float]], sizes: tuple[int, int]) -> str:
    a, b = sizes
    out = [
        f"Lenient ladder, many bare `@@` hunks in one file (6 lines per hunk): {a} vs {b} "
        "hunks; the ratio is the time for 5x the hunks (linear = 5x).",
        "",
        f"| hunks | {a} | {b} | ratio |",
        "|---|---|---|---|",
    ]
    for kind, (ta, tb) in scaling.items():
        out.append(f"| {kind} | {ta:.2f} s | {tb:.2f} s | {tb / ta:.1f}x |")
    return "\n".join(out)


def write_docs(text: str, command: str) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    content = doc.read_text()
    start = content.index("## Diffs")
    nxt = content.find("\n## ", start + 1)
    end = len(content) if nxt == -1 else nxt + 1
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    section = f"## Diffs\n\nCommand: `{command}` ({stamp}, {_machine()}).\n\n{text}\n\n"
    doc.write_text(content[:start] + section + content[end:])


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()}, {os.cpu_count()} CPUs, shared"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small corpus; docs not rewritten")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument(
        "--scaling", action="store_true", help="only the many-hunks table (docs not rewritten)"
    )
    args = ap.parse_args(argv)
    if args.scaling:
        scaling = hunk_scaling()
        print(_scaling_table(scaling, (1000, 5000)))
        return 0
    rng = random.Random(args.seed)
    n_hist = 10 if args.quick else 60
    n_lib = 15 if args.quick else 110
    edits = history_edits(n_hist)
    lib = stdlib_edits(n_lib, rng)
    cases = [c for path, old, new in edits + lib for c in perturb(path, old, new, rng)]
    tallies = correctness(cases)
    sp = speed(5 if args.quick else 15)
    sizes = (200, 1000) if args.quick else (1000, 5000)
    scaling = hunk_scaling(sizes)
    sources = f"{len(edits)} real edits from this repository's history and {len(lib)} edits of stdlib sources"
    text = report(cases, tallies, sp, sources, scaling, sizes)
    print(text)
    if not args.quick:
        write_docs(text, ".venv/bin/python benchmarks/bench_diffs.py")
    u = tallies["ladder"][False]
    ok = u.total and u.correct / u.total >= 0.99 and u.wrong == 0
    print("\nGoal (ladder >= 99% of unambiguous, 0 wrong places):", "MET" if ok else "NOT MET")
    worst = max(tb / ta for ta, tb in scaling.values())
    print(f"Goal (5x the hunks take about 5x the time): worst {worst:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
