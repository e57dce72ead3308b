"""A git history converted to Mercurial (``hg convert``), and the same range mined from both,
side by side: used by ``bench_hg_mine.py`` and ``bench_data_quality.py``.

The conversion keeps messages as they are (``convert.git.committeractions=dropcommitter``: no
``committer:`` line added) and takes the committer date, which is the date the miner reads
from git too, so both give the same example ids.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

from bactrian.vcs import hg_convert


def convert_to_hg(git_repo: Path, dest: Path, rev: str | list[str] = "HEAD") -> dict[str, str]:
    """Convert ``git_repo`` up to ``rev`` (one or several revisions) into a new Mercurial
    repository ``dest`` (:func:`bactrian.vcs.hg_convert`); returns the map git commit → hg
    node."""
    return hg_convert(git_repo, dest, [rev] if isinstance(rev, str) else rev)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def hg_range(git_repo: Path, rev_range: str, shamap: dict[str, str]) -> str:
    """The Mercurial revset for a git range (``A..B`` or ``B``) over the converted repo."""
    if ".." in rev_range:
        a, b = re.split(r"\.\.\.?", rev_range, maxsplit=1)
        ha = shamap[_git(git_repo, "rev-parse", (a or "HEAD") + "^{commit}").strip()]
        hb = shamap[_git(git_repo, "rev-parse", (b or "HEAD") + "^{commit}").strip()]
        return f"only({hb}, {ha})"
    node = shamap[_git(git_repo, "rev-parse", rev_range + "^{commit}").strip()]
    return f"::{node}"


def best(fn: Any, rounds: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def git_vs_hg(git_repo: Path, rev_range: str, work: Path, rounds: int = 1) -> dict[str, Any]:
    """Mine ``rev_range`` of ``git_repo`` and of its Mercurial conversion (full pipeline:
    read, filter, describe; no database): best times, the ratio, whether the examples agree."""
    from bactrian.mine.config import MineConfig
    from bactrian.mine.mining import mine_vcs

    hg_repo = work / "hg"
    ends = [e or "HEAD" for e in re.split(r"\.\.\.?", rev_range)]
    t0 = time.perf_counter()
    shamap = convert_to_hg(git_repo, hg_repo, ends)
    t_convert = time.perf_counter() - t0
    revset = hg_range(git_repo, rev_range, shamap)
    cfg = MineConfig()
    t_git, res_git = best(lambda: mine_vcs(git_repo, rev_range, cfg, kind="git"), rounds)
    t_hg, res_hg = best(lambda: mine_vcs(hg_repo, revset, cfg, kind="hg"), rounds)

    def key(res: Any) -> list[tuple[str, str, str]]:
        return [(e.id, e.diff, e.prompt) for e in res.examples]

    n_commits = len(_git(git_repo, "rev-list", rev_range).split())
    return {
        "commits": n_commits,
        "examples": len(res_git.examples),
        "git_s": t_git,
        "hg_s": t_hg,
        "ratio": t_hg / t_git if t_git else float("inf"),
        "identical": key(res_git) == key(res_hg),
        "convert_s": t_convert,
    }
