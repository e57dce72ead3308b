"""Data quality of mined VCS history: what a model would be trained on.

    .venv/bin/python benchmarks/bench_data_quality.py REPO RANGE [--label] [--json]
    .venv/bin/python benchmarks/bench_data_quality.py sample        # the bundled sample

REPO is any git (or Mercurial) repository of a dune project, RANGE a git range (``A..B``,
``HEAD``) or Mercurial revset; ``sample`` is the bundled sample workspace's evolution (its
scripted session, one commit per step, written to a temporary git repository). The range is
mined with the library (``mine_vcs``: read, secret check, filters, dedup, descriptions; no
database) and reported:

* examples kept per 100 commits, and what the filters dropped;
* the share of prompts by source (``prompt_source``: commit-message, diagnostics, llm,
  diff-summary, …; ``unknown`` where the miner does not record it yet);
* the share of "update FILE" prompts (goal ≤ 5%) and of examples with no context (goal ≤ 2%);
* leak-audit hits: prompts that copy new code or name identifiers only the answer introduces
  (goal 0), with a sample of 20 prompts and their sources to audit by eye;
* with ``--label``: the share of examples whose gold diff leaves its base green (goal ≥ 95%)
  and of split parts that build (real dune builds);
* for a git repository: the Mercurial/git time ratio for mining the same range from its
  ``hg convert`` conversion (goal ≤ 3×; ``--no-hg`` skips it).

``--docs NAME`` records the figures as row NAME of the "Data quality" section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bactrian.dataset.splits import prompt_source  # noqa: E402
from bactrian.mine.config import MineConfig  # noqa: E402
from bactrian.mine.mining import mine_vcs  # noqa: E402
from bactrian.mine.quality import figures, is_update_file, label_figures, pct, share  # noqa: E402,F401

SECTION = "## Data quality"


def sample_history(dest: Path) -> Path:
    """The sample workspace's scripted session as a git history: one commit per step (its
    title as the message, its scripted time as the date), the never-green end included."""
    from bactrian.sample import SESSION
    from bactrian.sample.history import write_history

    return write_history(dest, steps=len(SESSION.steps) - 1)


def measure(
    repo: Path,
    rev_range: str,
    *,
    label: bool,
    label_max: int,
    hg: bool,
    work: Path,
    build_cmd: str | None = None,
) -> dict[str, Any]:
    from bactrian.mine.vcs import open_vcs

    reader = open_vcs(repo)
    try:
        commits = reader.commits(rev_range)
    finally:
        reader.close()
    t0 = time.perf_counter()
    res = mine_vcs(repo, rev_range, MineConfig())
    t_mine = time.perf_counter() - t0
    examples = res.examples
    n = len(examples)
    f = figures(examples, commits=len(commits))
    rng = random.Random(0)
    sample = rng.sample(examples, min(20, n))
    out: dict[str, Any] = {
        "repo": str(repo),
        "range": rev_range,
        "kind": reader.kind,
        "commits": len(commits),
        "candidates": res.report.candidates,
        "examples": n,
        "per_100_commits": f["per_100_commits"],
        "kinds": f["kinds"],
        "dropped": res.report.to_dict()["dropped"],
        "prompt_sources": f["prompt_sources"],
        "update_file_share": f["update_file_share"],
        "empty_context_share": f["empty_context_share"],
        "leak_hits": f["leak_hits"],
        "leaks": f["leaks"],
        "mine_s": t_mine,
        "prompt_sample": [
            {"id": e.id, "source": prompt_source(e), "prompt": e.prompt.split("\n", 1)[0]}
            for e in sample
        ],
    }
    if label:
        from bactrian.mine.label import label_examples

        # the latest ones: old history may not build with today's toolchain (jbuild files)
        chosen = examples[-label_max:] if label_max else examples
        t0 = time.perf_counter()
        label_examples(chosen, work / "label", build_cmd=build_cmd)
        out["label_s"] = time.perf_counter() - t0
        out.update(label_figures(chosen))
    if hg and reader.kind == "git":
        from benchmarks._hgconvert import git_vs_hg

        (work / "hg").mkdir()
        r = git_vs_hg(repo, rev_range, work / "hg", rounds=1)
        out["hg_git_ratio"] = r["ratio"]
        out["hg_identical"] = r["identical"]
        out["hg_s"], out["git_s"] = r["hg_s"], r["git_s"]
    return out


def render_text(r: dict[str, Any]) -> str:
    lines = [
        f"{r['repo']} {r['range']} ({r['kind']}): {r['commits']} commits, {r['candidates']} "
        f"candidates, {r['examples']} kept ({r['per_100_commits']:.0f} per 100 commits) in "
        f"{r['mine_s']:.1f} s; kinds {r['kinds']}",
        f"dropped: {r['dropped']}",
        "prompt sources: " + ", ".join(f"{k} {pct(v)}" for k, v in r["prompt_sources"].items()),
        f'"update FILE" prompts: {pct(r["update_file_share"])} (goal ≤ 5%)',
        f"empty context: {pct(r['empty_context_share'])} (goal ≤ 2%)",
        f"leak-audit hits: {r['leak_hits']} (goal 0)",
    ]
    for k, v in list(r["leaks"].items())[:5]:
        lines.append(f"  {k}: {v[0]}")
    if "gold_green_share" in r:
        lines.append(
            f"labels ({r['labelled']} examples, {r['label_s']:.0f} s): gold diff green "
            f"{pct(r['gold_green_share'])} (goal ≥ 95%), base green {pct(r['base_green_share'])}, "
            f"split parts green {pct(r['parts_green_share'])} of {r['parts']}"
        )
    if "hg_git_ratio" in r:
        lines.append(
            f"Mercurial/git time: {r['hg_git_ratio']:.1f}× ({r['hg_s']:.1f} s / {r['git_s']:.1f}"
            f" s; same examples: {'yes' if r['hg_identical'] else 'NO'}) (goal ≤ 3×)"
        )
    lines.append("sample of prompts (source: prompt):")
    lines += [f"  {s['source']}: {s['prompt']}" for s in r["prompt_sample"]]
    return "\n".join(lines)


TABLE_HEAD = (
    "| history | range | commits | kept / 100 commits | prompt sources | “update FILE” | "
    "empty context | leak hits | gold green | parts green | hg/git |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(name: str, r: dict[str, Any]) -> str:
    srcs = ", ".join(f"{k} {pct(v)}" for k, v in r["prompt_sources"].items())
    gold = pct(r.get("gold_green_share")) if "gold_green_share" in r else "not run"
    parts = pct(r.get("parts_green_share")) if "gold_green_share" in r else "not run"
    if "gold_green_share" in r and r.get("parts"):
        parts += f" of {r['parts']}"
    hg = f"{r['hg_git_ratio']:.1f}×" if "hg_git_ratio" in r else "—"
    return (
        f"| {name} | `{r['range']}` | {r['commits']} | {r['per_100_commits']:.0f} "
        f"({r['examples']}) | {srcs} | {pct(r['update_file_share'])} | "
        f"{pct(r['empty_context_share'])} | {r['leak_hits']} | {gold} | {parts} | {hg} |"
    )


INTRO = (
    "`.venv/bin/python benchmarks/bench_data_quality.py REPO RANGE [--label] --docs NAME` "
    "(or `sample` for the bundled sample's evolution). Each row: one history mined with "
    "`mine_vcs` (no database). Goals: “update FILE” prompts ≤ 5%, empty context ≤ 2%, "
    "leak hits 0, gold diffs green ≥ 95%, Mercurial/git ≤ 3×. The repositories are public "
    "OCaml libraries cloned to /tmp (none of their code is in this project)."
)


def write_docs(name: str, r: dict[str, Any], note: str) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    content = doc.read_text()
    rows: dict[str, str] = {}
    notes: list[str] = []
    if SECTION in content:
        start = content.index(SECTION)
        nxt = content.find("\n## ", start + 1)
        end = len(content) if nxt < 0 else nxt + 1
        body = content[start:end]
        for line in body.splitlines():
            if line.startswith("| ") and not line.startswith("| history"):
                rows[line.split("|")[1].strip()] = line
            elif line.startswith("- "):
                notes.append(line)
    else:
        start = end = len(content)
        content = content.rstrip("\n") + "\n\n"
        start = end = len(content)
    rows[name] = table_row(name, r)
    stamp = f"- {name}: {platform.node()}, {time.strftime('%Y-%m-%d')}. {note}".rstrip()
    notes = [n for n in notes if not n.startswith(f"- {name}:")] + [stamp]
    text = "\n".join([SECTION, "", INTRO, "", TABLE_HEAD, *rows.values(), "", *notes])
    doc.write_text(content[:start] + text + "\n\n" + content[end:].lstrip("\n"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("repo", help="a git/hg repository of a dune project, or `sample`")
    ap.add_argument("range", nargs="?", default="HEAD", help="git range A..B or hg revset")
    ap.add_argument("--label", action="store_true", help="label with real builds")
    ap.add_argument(
        "--label-max", type=int, default=0, help="label only the latest N examples (0: all)"
    )
    ap.add_argument("--build-cmd", help="build command for --label (default: dune build @check)")
    ap.add_argument("--no-hg", action="store_true", help="skip the Mercurial/git time ratio")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--docs", metavar="NAME", help="record as row NAME in docs/benchmarks.md")
    ap.add_argument("--note", default="", help="a note for the docs row")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        os.environ.setdefault("BACTRIAN_DATA_DIR", str(Path(tmp) / "data"))
        if args.repo == "sample":
            repo = sample_history(Path(tmp) / "sample")
            if args.range == "HEAD":  # the session's steps, not the untouched workspace
                from bactrian.sample import SESSION

                args.range = f"HEAD~{len(SESSION.steps) - 1}..HEAD"
        else:
            repo = Path(args.repo).expanduser().resolve()
            if not repo.exists():
                print(f"{args.repo} does not exist; pass a repository path or `sample`.")
                return 2
        from bactrian.errors import BactrianError

        try:
            r = measure(
                repo,
                args.range,
                label=args.label,
                label_max=args.label_max,
                hg=not args.no_hg,
                work=Path(tmp),
                build_cmd=args.build_cmd,
            )
        except BactrianError as exc:
            print(f"Error: {exc}")
            return 1
    if args.repo == "sample":
        r["repo"] = "sample (bactrian.sample session, one commit per step)"
    print(json.dumps(r, indent=2, sort_keys=True) if args.json else render_text(r))
    if args.docs:
        write_docs(args.docs, r, args.note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
