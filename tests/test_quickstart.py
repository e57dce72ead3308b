"""``bactrian quickstart`` on real dune repositories built from the sample workspace's
evolution, in git and in Mercurial: real doctor builds, real labels through warm CES trees,
real evaluation (SmolLM2 or the gold answers), the report in headless Chromium — and the
repository byte-identical afterwards, its VCS state included."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.cli import cli
from bactrian.quickstart import SUMMARY_JSON, run_quickstart
from bactrian.sample.history import write_history
from tests.evaluate.browser import check_report
from tests.mine.repos import ENV, sh
from tests.models.modelcache import use_model_cache

use_model_cache()


def repo_state(repo: Path) -> dict[str, str]:
    """Every file under ``repo`` (its .git / .hg included) → its content's hash, and every
    directory: the repository and its VCS state, byte for byte."""
    out = {}
    for p in sorted(repo.rglob("*")):
        rel = p.relative_to(repo).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + str(p.readlink())
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def _quiet(_line: str) -> None:
    pass


@pytest.mark.slow
def test_quickstart_on_a_git_history_evaluates_smollm2(tmp_path: Path) -> None:
    repo = write_history(tmp_path / "tally", green_only=True)
    before = repo_state(repo)
    lines: list[str] = []
    r = run_quickstart(
        repo,
        tmp_path / "out",
        rev_range="HEAD~6..HEAD",
        model="smollm2",
        max_tokens=32,
        limit=1,
        echo=lines.append,
    )
    text = "\n".join(lines)
    assert r.stopped is None, text
    assert repo_state(repo) == before, "quickstart changed the repository or its VCS state"
    assert r.kind == "git" and r.commits == 6 and r.scope == "the whole project"
    q = r.quality
    assert q["examples"] >= 6 and q["labelled"] == q["examples"]
    assert sum(q["prompt_sources"].values()) == pytest.approx(1.0)
    assert "prompt sources:" in text and "empty context:" in text and "validity" in text
    assert r.splits.get("heldout", 0) >= 1
    assert r.warm["state"] == "green"
    s = r.eval_summary
    assert s["model"] == "smollm2" and s["gold"]["judged"] == 1 and s["examples"] == 1
    assert s["tokens_out"]["mean"] > 0
    saved = json.loads((tmp_path / "out" / SUMMARY_JSON).read_text())
    assert saved["eval_summary"]["model"] == "smollm2" and saved["stopped"] is None
    assert f"report:       {tmp_path / 'out' / 'eval' / 'report.html'}" in text
    seen = check_report(Path(r.paths["report"]), tmp_path / "quickstart.png")
    assert seen["errors"] == [] and seen["blocked"] == []
    assert seen["funnel_bars"] == 6 and seen["rows"] == 1


@pytest.mark.slow
def test_quickstart_on_mercurial_reports_commits_that_do_not_build(tmp_path: Path) -> None:
    # every step committed: some commits leave the build red
    repo = write_history(tmp_path / "tally-hg", kind="hg")
    before = repo_state(repo)
    r = run_quickstart(repo, tmp_path / "out", rev_range="4:", model="gold", echo=_quiet)
    text = "\n".join(r.lines)
    assert repo_state(repo) == before, "quickstart changed the repository or its VCS state"
    assert r.stopped is None, text
    assert r.kind == "hg" and r.commits == 9
    red = [s for s in r.skipped if s["what"].startswith("build at ")]
    assert red and any("This expression has type" in s["why"] for s in red), r.skipped
    assert "does not build at" in text
    assert 0 < r.quality["gold_green_share"] < 1
    g = r.eval_summary["gold"]
    assert g["judged"] >= 1
    assert r.eval_summary["pass@1"] == pytest.approx(g["valid"] / g["judged"] if g["judged"] else 0)


BIG_ML = "".join(f"let g{i} x = x * {i} + {i}\n" for i in range(160))


def _commit(repo: Path, msg: str, files: dict[str, str], n: int) -> None:
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    sh(repo, "git", "add", "-A")
    date = f"{1_700_100_000 + 600 * n} +0000"
    sh(
        repo,
        "git",
        "commit",
        "-q",
        "-m",
        msg,
        env=dict(ENV, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date),
    )


@pytest.mark.slow
def test_quickstart_says_what_it_skipped_and_why(tmp_path: Path) -> None:
    """A missing library at the head, a huge commit, a merge and a submodule: each reported,
    none a crash."""
    repo = write_history(tmp_path / "tally", green_only=True)
    start = sh(repo, "git", "rev-parse", "HEAD").strip()
    util = (repo / "lib" / "util.ml").read_text()
    util_mli = (repo / "lib" / "util.mli").read_text()
    _commit(
        repo,
        "Add a benchmark of the ledger",
        {
            "bench/dune": "(executable (name b) (libraries core_bench tally))\n",
            "bench/b.ml": 'let () = ignore (Tally.Util.pad_left 2 "x")\n',
        },
        1,
    )
    _commit(repo, "Add the Big module", {"lib/big.ml": BIG_ML}, 2)
    sh(repo, "git", "checkout", "-q", "-b", "side")
    _commit(
        repo,
        "Add Util.twice",
        {
            "lib/util.ml": util + "\nlet twice f x = f (f x)\n",
            "lib/util.mli": util_mli + "\nval twice : ('a -> 'a) -> 'a -> 'a\n",
        },
        3,
    )
    sh(repo, "git", "checkout", "-q", "main")
    _commit(repo, "Add Big.first", {"lib/big.ml": BIG_ML + "let first = g0\n"}, 4)
    sh(
        repo,
        "git",
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge side",
        "side",
        env=dict(ENV, GIT_AUTHOR_DATE="1700103000 +0000", GIT_COMMITTER_DATE="1700103000 +0000"),
    )
    sub = tmp_path / "sub"
    sub.mkdir()
    sh(sub, "git", "init", "-q", "-b", "main")
    _commit(sub, "vendored", {"README": "vendored\n"}, 0)
    sub_head = sh(sub, "git", "rev-parse", "HEAD").strip()
    (repo / ".gitmodules").write_text(
        '[submodule "vendor/sub"]\n\tpath = vendor/sub\n\turl = ../sub\n'
    )
    sh(repo, "git", "update-index", "--add", "--cacheinfo", f"160000,{sub_head},vendor/sub")
    _commit(repo, "Vendor sub as a submodule", {}, 6)
    before = repo_state(repo)
    r = run_quickstart(
        repo, tmp_path / "out", rev_range=f"{start}..HEAD", model="gold", echo=_quiet
    )
    text = "\n".join(r.lines)
    assert repo_state(repo) == before
    assert 'bench/ needs library "core_bench", not installed' in " ".join(r.excluded), text
    assert r.scope == "--exclude-dir bench"
    whats = {s["what"]: s for s in r.skipped}
    assert whats["merge"]["count"] == 1, r.skipped
    assert any(k in whats for k in ("max_changed_lines", "split_first_part_over_limit")), r.skipped
    assert "submodule contents" in whats and any("submodules (.gitmodules)" in n for n in r.notes)
    assert "STOPPED" not in text or r.stopped  # a stop is always said


def test_quickstart_without_a_dune_project_stops_with_a_reason(tmp_path: Path) -> None:
    repo = tmp_path / "py"
    repo.mkdir()
    sh(repo, "git", "init", "-q", "-b", "main")
    _commit(repo, "a python project", {"setup.py": "print('hi')\n"}, 0)
    _commit(repo, "more", {"setup.py": "print('hello')\n"}, 1)
    before = repo_state(repo)
    res = CliRunner().invoke(cli, ["quickstart", str(repo), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1, res.output
    assert "no dune-project at the root" in res.output and "STOPPED" in res.output
    assert "Traceback" not in res.output
    assert repo_state(repo) == before
    saved = json.loads((tmp_path / "out" / SUMMARY_JSON).read_text())
    assert "no dune-project" in saved["stopped"]


def test_quickstart_refuses_bad_paths_in_one_line(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    res = CliRunner().invoke(cli, ["quickstart", str(plain), "--out", str(tmp_path / "o1")])
    assert res.exit_code == 1 and "neither a git nor a Mercurial repository" in res.output
    res = CliRunner().invoke(
        cli, ["quickstart", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")]
    )
    assert res.exit_code == 1 and "does not exist" in res.output
    repo = write_history(tmp_path / "r", steps=1)
    before = repo_state(repo)
    res = CliRunner().invoke(cli, ["quickstart", str(repo), "--out", str(repo / "qs")])
    assert res.exit_code == 1 and "never writes inside your repository" in res.output
    res = CliRunner().invoke(
        cli, ["quickstart", str(repo), "--range", "nosuch..HEAD", "--out", str(tmp_path / "o3")]
    )
    assert res.exit_code == 1 and "no revision 'nosuch'" in res.output, res.output
    for r in (res,):
        assert "Traceback" not in r.output
    assert repo_state(repo) == before
