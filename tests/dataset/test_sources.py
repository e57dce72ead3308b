"""Datasets from chosen sources: selection by workspace/repository and time, counts per
source, kind, split and prompt source, browsing, commit-date time, and every source
represented in each split where it has enough examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.cli import cli
from bactrian.dataset.example import Example
from bactrian.dataset.splits import (
    DatasetConfig,
    Selection,
    assign_splits,
    build_dataset,
    dataset_stats,
    list_examples,
    parse_time,
    prompt_source,
)
from bactrian.dataset.store import ExampleDB
from bactrian.errors import MiningError
from bactrian.mine.config import MineConfig
from bactrian.mine.mining import mine_vcs
from bactrian.mine.textdiff import render
from tests.mine.repos import ENV, make_git, sh


def ex(i: int, repo: str, t: float) -> Example:
    return Example(
        source=f"git:{repo}",
        kind="change",
        diff=render({"a.ml": b"let z = 0\n"}, {"a.ml": f"let z = 0\nlet v{i} = {i}\n".encode()}),
        prompt=f"add v{i}",
        base={"type": "git", "repo": repo, "rev": f"p{i}", "commit": f"c{i}", "key": f"k{i}"},
        created_at=t,
    )


def test_every_repository_is_represented_in_each_split() -> None:
    """Repository B's history is all later than A's: one time line over both would put B in
    heldout only and A in train only."""
    items = [ex(i, "/r/a", 1000.0 + i) for i in range(20)]
    items += [ex(100 + i, "/r/b", 5000.0 + i) for i in range(10)]
    items += [ex(200 + i, "/r/small", 9000.0 + i) for i in range(2)]
    items += [ex(300, "/r/one", 9500.0)]
    kept, rule = assign_splits(items, DatasetConfig(heldout_fraction=0.2, rl_fraction=0.2))
    splits = {r: {e.split for e in kept if e.workspace == r} for r in ("/r/a", "/r/b")}
    assert splits == {"/r/a": {"train", "rl", "heldout"}, "/r/b": {"train", "rl", "heldout"}}
    assert {e.split for e in kept if e.workspace == "/r/small"} == {"train", "heldout"}
    assert {e.split for e in kept if e.workspace == "/r/one"} == {"train"}
    for r in ("/r/a", "/r/b"):  # within a repository: by time
        mine = [e for e in kept if e.workspace == r]
        assert max(e.created_at for e in mine if e.split == "train") < min(
            e.created_at for e in mine if e.split == "heldout"
        )
    assert set(rule["heldout_from_time_by_source"]) == {"/r/a", "/r/b", "/r/small"}
    together, _ = assign_splits(items, DatasetConfig(split_per_source=False))
    assert "heldout" not in {e.split for e in together if e.workspace == "/r/a"}


def test_prompt_source_defaults_to_unknown() -> None:
    e = ex(1, "/r/a", 1.0)
    assert prompt_source(e) == "unknown"
    e.stats["prompt_source"] = "commit-message"
    assert prompt_source(e) == "commit-message"
    e.prompt_source = "llm"  # type: ignore[attr-defined]  # the field as the schema adds it
    assert prompt_source(e) == "llm"


def test_parse_time() -> None:
    assert parse_time("1700000000") == 1_700_000_000.0
    assert parse_time("2023-11-14") == 1_699_920_000.0
    with pytest.raises(MiningError, match="Cannot read the time 'soon'"):
        parse_time("soon")


def _two_repos(tmp_path: Path) -> tuple[Path, Path]:
    a = make_git(tmp_path / "a", start_time=1_600_000_000)
    b = make_git(tmp_path / "b", start_time=1_700_000_000)
    (b / "src" / "extra.ml").write_text("let extra = 1\n")
    sh(b, "git", "add", "-A")
    sh(
        b,
        "git",
        "commit",
        "-q",
        "-m",
        "add extra",
        env=dict(ENV, GIT_COMMITTER_DATE="1700100000 +0000", GIT_AUTHOR_DATE="1700100000 +0000"),
    )
    return a.resolve(), b.resolve()


def test_build_from_chosen_sources_and_time_range(tmp_path: Path) -> None:
    a, b = _two_repos(tmp_path)
    with ExampleDB() as db:
        mine_vcs(a, "HEAD~4..HEAD", MineConfig(), db=db)
        mine_vcs(b, "HEAD~5..HEAD", MineConfig(), db=db)
        everything, reports = db.all(), db.reports()
    only_b = build_dataset(
        tmp_path / "b-only",
        everything,
        selection=Selection(sources=[str(b)]),
        mining_reports=reports,
    )
    assert [r["source"] for r in only_b["sources"]] == [str(b)]
    assert only_b["selection"]["sources"] == [str(b)]
    n_b = sum(1 for e in everything if e.workspace == str(b))
    assert only_b["examples"] == n_b
    late = build_dataset(tmp_path / "late", everything, selection=Selection(since=1_700_050_000.0))
    assert late["examples"] == 1 and late["sources"][0]["source"] == str(b)
    with pytest.raises(MiningError, match=r"No mined examples from /nowhere\. Sources mined"):
        build_dataset(tmp_path / "x", everything, selection=Selection(sources=["/nowhere"]))
    with pytest.raises(MiningError, match="No mined example matches the selection"):
        build_dataset(tmp_path / "y", everything, selection=Selection(until=1.0))
    st = dataset_stats(tmp_path / "b-only")
    assert st["by_source"] == {str(b): n_b}
    assert sum(st["by_prompt_source"].values()) == n_b
    assert set(st["by_source_split"][str(b)]) <= {"train", "rl", "heldout"}
    assert list_examples(tmp_path / "b-only", kind="change")
    assert list_examples(tmp_path / "b-only", source="/nowhere") == []


def test_a_rebased_commit_is_as_late_as_its_commit_date(tmp_path: Path) -> None:
    """Written first (author date oldest), applied last (commit date newest): held out."""
    repo = make_git(tmp_path / "g")
    (repo / "src" / "late.ml").write_text("let late = 1\n")
    sh(repo, "git", "add", "-A")
    env = dict(ENV, GIT_AUTHOR_DATE="1500000000 +0000", GIT_COMMITTER_DATE="1800000000 +0000")
    sh(repo, "git", "commit", "-q", "-m", "add late", env=env)
    res = mine_vcs(repo, "HEAD~5..HEAD", MineConfig())
    kept, _ = assign_splits(res.examples, DatasetConfig(heldout_fraction=0.2, rl_fraction=0.2))
    late = next(e for e in kept if "b/src/late.ml" in e.diff)
    assert late.split == "heldout" and late.created_at == 1_800_000_000.0


def test_cli_sources_build_stats_list_show(tmp_path: Path) -> None:
    a, b = _two_repos(tmp_path)
    runner = CliRunner()
    for repo, rng in ((a, "HEAD~4..HEAD"), (b, "HEAD~5..HEAD")):
        res = runner.invoke(cli, ["mine", "--from-vcs", str(repo), "--range", rng])
        assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["dataset", "sources"])
    assert res.exit_code == 0 and str(a) in res.output and str(b) in res.output
    out = tmp_path / "ds"
    res = runner.invoke(cli, ["dataset", "build", "--out", str(out), "--repo", str(a)])
    assert res.exit_code == 0, res.output
    assert str(a) in res.output and str(b) not in res.output
    res = runner.invoke(cli, ["dataset", "build", "--out", str(out), "--repo", str(tmp_path)])
    assert res.exit_code == 1 and "No mined examples from" in res.output
    res = runner.invoke(cli, ["dataset", "build", "--out", str(out), "--since", "tomorrow"])
    assert res.exit_code == 1 and "Cannot read the time" in res.output
    res = runner.invoke(cli, ["dataset", "stats", str(out)])
    assert res.exit_code == 0
    assert "by prompt:" in res.output and f"  {a}:" in res.output and "by kind:" in res.output
    res = runner.invoke(cli, ["dataset", "list", str(out), "--limit", "2"])
    assert res.exit_code == 0 and "more (--limit 0 lists all)" in res.output
    first = res.output.split()[0]
    res = runner.invoke(cli, ["dataset", "list", str(out), "--json", "--limit", "0"])
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert {r["base"]["repo"] for r in rows} == {str(a)}
    res = runner.invoke(cli, ["dataset", "show", str(out), first])
    assert res.exit_code == 0 and f"id:      {first}" in res.output
    assert "prompt:" in res.output and "diff --git" in res.output
