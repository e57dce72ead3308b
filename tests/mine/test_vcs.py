from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bactrian.errors import MiningError
from bactrian.mine.config import MineConfig
from bactrian.mine.textdiff import diff_stats
from bactrian.mine.vcs import mine_history, open_vcs
from tests.mine.repos import make_git, make_hg, sh


def _comparable(examples):  # type: ignore[no-untyped-def]
    return [
        (e.id, e.kind, e.diff, e.context, e.description, e.created_at, e.base["part"])
        for e in examples
    ]


def _git_state(repo: Path) -> tuple[str, str, str]:
    return (
        sh(repo, "git", "status", "--porcelain", "--ignored"),
        sh(repo, "git", "rev-parse", "HEAD"),
        sh(repo, "git", "stash", "list"),
    )


def test_git_and_hg_histories_give_the_same_examples(tmp_path: Path) -> None:
    git = make_git(tmp_path / "g")
    hg = make_hg(tmp_path / "h")
    before = _git_state(git)
    from_git, skipped = mine_history(git, "HEAD~4..HEAD")
    from_hg, _ = mine_history(hg, "1:tip")
    assert skipped == {}
    assert _git_state(git) == before, "mining changed the user's git repository"
    assert sh(hg, "hg", "status") == ""
    assert _comparable(from_git) == _comparable(from_hg)
    kinds = [e.kind for e in from_git]
    # 4 commits: to_string, readme, big stats commit split into parts, readme deletion
    assert kinds[:2] == ["change", "change"] and kinds[-1] == "change"
    assert kinds.count("vcs-part") >= 2
    assert "+let to_string t = string_of_int t" in from_git[0].diff
    assert from_git[0].context["files"]["src/money.mli"].startswith("type t")
    assert from_git[0].description == "add Money.to_string"
    assert from_git[0].base["type"] == "git" and from_hg[0].base["type"] == "hg"
    assert "deleted file mode" in from_git[-1].diff


def test_split_parts_are_coherent_within_limits_and_apply_in_order(tmp_path: Path) -> None:
    git = make_git(tmp_path / "g")
    examples, _ = mine_history(git, "HEAD~2..HEAD~1")
    parts = [e for e in examples if e.kind == "vcs-part"]
    assert len(parts) == len(examples) >= 2
    for p in parts:
        assert diff_stats(p.diff)["changed"] <= 100
    # the stats module travels with its interface (val/let of the same names together)
    first = parts[0].diff
    assert "b/src/stats.ml" in first and "b/src/stats.mli" in first
    assert "b/test/test_stats.ml" in first and "report" not in first
    # report uses Stats.f1: it comes after the part defining f1
    where_f1 = next(i for i, p in enumerate(parts) if "+let f1 x" in p.diff)
    where_use = next(i for i, p in enumerate(parts) if "+let r1 = Stats.f1 1" in p.diff)
    assert where_f1 < where_use
    # apply the parts in order with real `git apply` on the parent tree: the result is the commit
    tree = tmp_path / "tree"
    tree.mkdir()
    open_vcs(git).archive(parts[0].base["rev"], tree)
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
    for k, p in enumerate(parts):
        assert p.base["part"] == k + 1 and p.base["parts"] == len(parts)
        subprocess.run(
            ["git", "apply", "--check", "-"], cwd=tree, input=p.diff, text=True, check=True, env=env
        )
        subprocess.run(
            ["git", "apply", "-"], cwd=tree, input=p.diff, text=True, check=True, env=env
        )
    want = tmp_path / "want"
    want.mkdir()
    open_vcs(git).archive(parts[0].base["commit"], want)
    assert _tree(tree) == _tree(want)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_split_disabled_keeps_one_big_change(tmp_path: Path) -> None:
    git = make_git(tmp_path / "g")
    examples, _ = mine_history(git, "HEAD~2..HEAD~1", MineConfig(split_large=False))
    assert [e.kind for e in examples] == ["change"]
    assert diff_stats(examples[0].diff)["changed"] > 100


def test_not_a_repository_and_bad_range_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(MiningError, match="neither a git nor a Mercurial"):
        mine_history(tmp_path, "HEAD")
    git = make_git(tmp_path / "g")
    with pytest.raises(MiningError, match="no revision 'nope' in "):
        mine_history(git, "nope..HEAD")


def test_hg_accepts_a_git_style_range(tmp_path: Path) -> None:
    hg = make_hg(tmp_path / "h")
    by_revset, _ = mine_history(hg, "1:tip")
    by_range, _ = mine_history(hg, "0..tip")
    assert _comparable(by_range) == _comparable(by_revset)


def test_a_squashed_range_is_one_change_split_the_same_in_git_and_hg(tmp_path: Path) -> None:
    git = make_git(tmp_path / "g")
    hg = make_hg(tmp_path / "h")
    from_git, _ = mine_history(git, "HEAD~3..HEAD", squash_range=True)
    from_hg, _ = mine_history(hg, "2:tip", squash_range=True)
    assert _comparable(from_git) == _comparable(from_hg)
    assert len(from_git) >= 2 and {e.kind for e in from_git} == {"vcs-part"}
    assert len({e.base["commit"] for e in from_git}) == 1
    assert "reword readme" in from_git[0].description
    # the parts reconstruct the squashed range: parent of HEAD~2 → HEAD
    tree = tmp_path / "tree"
    tree.mkdir()
    open_vcs(git).archive(from_git[0].base["rev"], tree)
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
    for p in from_git:
        subprocess.run(
            ["git", "apply", "-"], cwd=tree, input=p.diff, text=True, check=True, env=env
        )
    want = tmp_path / "want"
    want.mkdir()
    open_vcs(git).archive("HEAD", want)
    assert _tree(tree) == _tree(want)
