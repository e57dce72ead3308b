"""Where the history lives: bare repositories, paths and revisions that do not exist, options
that do not apply to --from-vcs, commit dates, secrets in history, and Mercurial through one
command server giving the same examples as git."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.cli import cli
from bactrian.errors import MiningError
from bactrian.mine.config import MineConfig
from bactrian.mine.filters import MiningReport
from bactrian.mine.mining import drop_secrets, mine_vcs
from bactrian.mine.vcs import HgReader, commit_examples, mine_history, open_vcs
from bactrian.vcs import hg_convert
from tests.mine.repos import ENV, make_git, make_hg, sh


def _same(examples):  # type: ignore[no-untyped-def]
    return [(e.id, e.kind, e.diff, e.context, e.description, e.created_at) for e in examples]


def test_bare_git_and_hg_repositories_are_mined_like_their_working_copies(
    tmp_path: Path,
) -> None:
    git = make_git(tmp_path / "g")
    sh(tmp_path, "git", "clone", "-q", "--bare", str(git), str(tmp_path / "bare.git"))
    hg = make_hg(tmp_path / "h")
    sh(tmp_path, "hg", "clone", "-q", "-U", str(hg), str(tmp_path / "hbare"))
    assert not list((tmp_path / "hbare").glob("src"))  # no working copy
    want, _ = mine_history(git, "HEAD~4..HEAD")
    got, _ = mine_history(tmp_path / "bare.git", "HEAD~4..HEAD")
    assert _same(got) == _same(want) and got[0].base["repo"] == str(tmp_path / "bare.git")
    got_hg, _ = mine_history(tmp_path / "hbare", "1:tip")
    assert _same(got_hg) == _same(want)
    # the bases of bare-repository examples materialise (git archive works without a tree)
    tree = tmp_path / "tree"
    open_vcs(tmp_path / "bare.git").archive(got[0].base["rev"], tree)
    assert (tree / "src" / "money.ml").exists()


def test_missing_path_and_unknown_revisions_are_named(tmp_path: Path) -> None:
    with pytest.raises(MiningError, match=r"nowhere does not exist"):
        mine_history(tmp_path / "nowhere", "HEAD")
    git = make_git(tmp_path / "g")
    for bad in ("v9.9..HEAD", "HEAD~1..v9.9", "v9.9"):
        with pytest.raises(MiningError, match=rf"no revision 'v9.9' in {git}") as err:
            mine_history(git, bad)
        assert "fatal:" not in str(err.value)
    hg = make_hg(tmp_path / "h")
    for bad in ("v9.9..tip", "v9.9:tip", "v9.9"):
        with pytest.raises(MiningError, match=rf"no revision 'v9.9' in {hg}") as err:
            mine_history(hg, bad)
        assert "abort:" not in str(err.value)


def test_cli_refuses_options_that_do_not_apply(tmp_path: Path) -> None:
    git = make_git(tmp_path / "g")
    runner = CliRunner()
    base = ["mine", "--from-vcs", str(git), "--range", "HEAD~1..HEAD", "--no-store"]
    res = runner.invoke(cli, [*base, "--executor", "ray"])
    assert res.exit_code == 2 and "--executor does not apply to --from-vcs" in res.output
    res = runner.invoke(cli, [*base, "--executor", "local"])  # given at all: refused
    assert res.exit_code == 2
    res = runner.invoke(cli, ["mine", str(tmp_path), "--squash"])
    assert res.exit_code == 2 and "--squash applies only with --from-vcs" in res.output
    res = runner.invoke(cli, ["mine", "--from-vcs", str(tmp_path / "nope"), "--range", "A..B"])
    assert res.exit_code == 1 and "does not exist" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(cli, ["mine", "--from-vcs", str(git), "--range", "v9.9..HEAD"])
    assert res.exit_code == 1 and "no revision 'v9.9'" in res.output
    res = runner.invoke(cli, [*base, "--json"])  # the plain run still works
    # (the last commit only drops the README: a docs-only change, dropped and counted)
    report = json.loads(res.output)["report"]
    assert res.exit_code == 0 and report["candidates"] == 1
    assert report["dropped"] == {"docs_only": 1}


def test_commit_time_is_the_committer_date_not_the_author_date(tmp_path: Path) -> None:
    """A commit written long ago and applied (rebased, cherry-picked) now entered the history
    now: splits by time must see it as late."""
    repo = make_git(tmp_path / "g")
    (repo / "src" / "late.ml").write_text("let late = 1\n")
    sh(repo, "git", "add", "-A")
    env = dict(ENV, GIT_AUTHOR_DATE="1500000000 +0000", GIT_COMMITTER_DATE="1800000000 +0000")
    sh(repo, "git", "commit", "-q", "-m", "add late", env=env)
    examples, _ = mine_history(repo, "HEAD~1..HEAD")
    assert [e.created_at for e in examples] == [1_800_000_000.0]


def test_secrets_in_history_are_dropped_and_counted(tmp_path: Path) -> None:
    repo = make_git(tmp_path / "g")
    commits = [
        ("add env", ".env", "API_KEY=sk-live-123\n"),
        ("add key", "deploy_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAK\n"),
        ("add aws", ".aws/credentials", "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"),
        ("configure", "src/conf.ml", 'let token = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"\n'),
        ("add a helper", "src/helper.ml", "let twice x = x * 2\n"),
    ]
    for msg, path, text in commits:
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        sh(repo, "git", "add", "-f", path)
        sh(repo, "git", "commit", "-q", "-m", msg)
    res = mine_vcs(repo, "HEAD~5..HEAD", MineConfig())
    assert ["b/src/helper.ml" in e.diff for e in res.examples] == [True]
    assert res.report.dropped.get("secret") == 4
    assert res.report.candidates == 5
    # a clean diff whose context would show a secret file is dropped too
    report = MiningReport()
    ex = res.examples[0]
    ex.context["files"]["deploy_key"] = "-----BEGIN EC PRIVATE KEY-----\nxyz\n"
    assert drop_secrets([ex], report) == [] and report.dropped == {"secret": 1}


def test_hg_without_the_command_server_gives_the_same_examples(tmp_path: Path) -> None:
    hg = make_hg(tmp_path / "h")
    served = HgReader(hg.resolve())
    plain = HgReader(hg.resolve())
    plain._server_failed = True  # a process per query, as when no command server can start
    cfg = MineConfig()
    try:
        a = [x for c in served.commits("1:tip") for x in commit_examples(served, c, cfg)]
        assert served._server is not None and served._server.proc.poll() is None
        b = [x for c in plain.commits("1:tip") for x in commit_examples(plain, c, cfg)]
    finally:
        served.close()
    assert _same(a) == _same(b) and a
    assert served._server is None
    assert shutil.which("hg")


def test_a_merged_history_converted_to_hg_gives_the_same_examples(tmp_path: Path) -> None:
    """A branch that adds files, merged back: Mercurial lists a merge's files against both
    parents, so file lists and changes must not be derived from a merge's."""
    repo = make_git(tmp_path / "g")
    t = 1_700_100_000

    def commit(msg: str, files: dict[str, str]) -> None:
        nonlocal t
        for rel, text in files.items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
        sh(repo, "git", "add", "-A")
        t += 60
        env = dict(ENV, GIT_AUTHOR_DATE=f"{t} +0000", GIT_COMMITTER_DATE=f"{t} +0000")
        sh(repo, "git", "commit", "-q", "-m", msg, env=env)

    sh(repo, "git", "checkout", "-q", "-b", "side")
    commit("add the side module", {"src/side.ml": "let s = 1\n", "src/side.mli": "val s : int\n"})
    sh(repo, "git", "checkout", "-q", "main")
    commit("extend money", {"src/money.ml": "type t = int\nlet zero = 0\n"})
    t += 60
    env = dict(ENV, GIT_AUTHOR_DATE=f"{t} +0000", GIT_COMMITTER_DATE=f"{t} +0000")
    sh(repo, "git", "merge", "-q", "--no-ff", "-m", "merge side", "side", env=env)
    commit("use side", {"src/side.ml": "let s = 2\n", "src/report.ml": "let r = Side.s\n"})
    hg = tmp_path / "h"
    hg_convert(repo, hg)
    from_git, skipped = mine_history(repo, "HEAD")
    from_hg, skipped_hg = mine_history(hg, "all()")
    assert skipped == skipped_hg == {"merge": 1}
    assert _same(from_git) == _same(from_hg)
    last = from_hg[-1]
    assert "src/side.mli" in last.context["files"], "the merged-in files are in the base"
