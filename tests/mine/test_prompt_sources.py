"""Prompts from intent on real git and Mercurial histories: a conventional-commit fix with a
changelog hunk, trailers, a PR number and a handle; a docs-only commit; a CI-only commit; a
feature whose subject names the new function; a large commit split into parts whose subject
has one clause per part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.cli import cli
from bactrian.mine.config import MineConfig
from bactrian.mine.describe import PROMPT_SOURCES, is_update_file
from bactrian.mine.mining import MineResult, mine_vcs
from tests.mine.repos import ENV, sh

GLOB = "let rec parse = function\n  | [] -> []\n  | c :: rest -> c :: parse rest\n"
GLOB_FIXED = (
    "let rec parse = function\n"
    "  | [] -> []\n"
    "  | '*' :: '*' :: rest -> '#' :: parse rest\n"
    "  | c :: rest -> c :: parse rest\n"
)
MONEY = "type t = int\n\nlet of_int x = x\n"
CHANGES = "## unreleased\n\n"
FIX_MESSAGE = (
    "fix(glob): double star parsing (#123)\n\n"
    "Two stars were read as two single stars, see GH-7.\n\n"
    "Signed-off-by: Dev <dev@example.com>\n"
    "Co-authored-by: Alice <alice@example.com>\n"
)


def _stats(n: int) -> tuple[str, str]:
    ml = "".join(f"let f{i} x = x + {i}\n" for i in range(n))
    mli = "".join(f"val f{i} : int -> int\n" for i in range(n))
    return ml, mli


def history() -> list[tuple[str, dict[str, str | None]]]:
    stats_ml, stats_mli = _stats(40)
    report = "let total xs = List.fold_left ( + ) 0 xs\n"
    report_new = report + "".join(f"let r{i} = Stats.f{i} {i}\n" for i in range(40))
    return [
        (
            "initial",
            {
                "dune-project": "(lang dune 2.9)\n",
                "lib/dune": "(library (name glob))\n",
                "lib/glob.ml": GLOB,
                "lib/money.ml": MONEY,
                "lib/report.ml": report,
                "CHANGES.md": CHANGES,
                "README.md": "# glob\n",
            },
        ),
        (
            FIX_MESSAGE,
            {
                "lib/glob.ml": GLOB_FIXED,
                "CHANGES.md": CHANGES + "- fix double star parsing (#123, @alice)\n",
            },
        ),
        (
            "Document the glob syntax",
            {"README.md": "# glob\n\n`**` matches any path.\n", "CHANGES.md": CHANGES + "- doc\n"},
        ),
        ("ci: test on OCaml 4.14", {".github/workflows/ci.yml": "on: push\n"}),
        (
            "Added a to_string for t, thanks @bob",
            {"lib/money.ml": MONEY + "let to_string t = string_of_int t\n"},
        ),
        (
            "add the stats module and use it in report",
            {"lib/stats.ml": stats_ml, "lib/stats.mli": stats_mli, "lib/report.ml": report_new},
        ),
    ]


def make_git(root: Path) -> Path:
    root.mkdir(parents=True)
    sh(root, "git", "init", "-q", "-b", "main")
    for i, (msg, files) in enumerate(history()):
        _write(root, files)
        sh(root, "git", "add", "-A")
        date = f"{1_700_000_000 + 3600 * i} +0000"
        env = dict(ENV, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        sh(root, "git", "commit", "-q", "-m", msg, env=env)
    return root


def make_hg(root: Path) -> Path:
    root.mkdir(parents=True)
    sh(root, "hg", "init")
    for i, (msg, files) in enumerate(history()):
        _write(root, files)
        sh(root, "hg", "commit", "-q", "-A", "-m", msg, "-d", f"{1_700_000_000 + 3600 * i} 0")
    return root


def _write(root: Path, files: dict[str, str | None]) -> None:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        assert text is not None
        target.write_text(text)


def _by_subject(result: MineResult) -> dict[str, list]:  # type: ignore[type-arg]
    out: dict[str, list] = {}  # type: ignore[type-arg]
    for ex in result.examples:
        out.setdefault(ex.base["message"].splitlines()[0], []).append(ex)
    return out


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[MineResult, MineResult]:
    root = tmp_path_factory.mktemp("prompt-repos")
    git = mine_vcs(make_git(root / "g"), "HEAD~5..HEAD", MineConfig())
    hg = mine_vcs(make_hg(root / "h"), "1:tip", MineConfig())
    return git, hg


def test_conventional_subject_is_the_prompt_and_the_changelog_hunk_is_dropped(
    mined: tuple[MineResult, MineResult],
) -> None:
    for result in mined:
        (fix,) = _by_subject(result)["fix(glob): double star parsing (#123)"]
        assert fix.prompt == "fix double star parsing in glob"
        assert fix.stats["prompt_source"] == "commit-message"
        assert "CHANGES.md" not in fix.diff and "lib/glob.ml" in fix.diff
        assert fix.stats["dropped_files"] == ["CHANGES.md"]
        for gone in ("#123", "GH-7", "Signed-off-by", "Co-authored-by", "@alice", "alice@"):
            assert gone not in fix.description, gone
        assert "Two stars were read as two single stars" in fix.description


def test_docs_only_and_ci_only_commits_are_dropped_and_counted(
    mined: tuple[MineResult, MineResult],
) -> None:
    for result in mined:
        subjects = _by_subject(result)
        assert "Document the glob syntax" not in subjects
        assert "ci: test on OCaml 4.14" not in subjects
        assert result.report.dropped["docs_only"] == 2
        reasons = [r["reason"] for r in result.report.reasons if r["filter"] == "docs_only"]
        assert any("README.md" in r for r in reasons)
        assert any(".github/workflows/ci.yml" in r for r in reasons)


def test_a_subject_naming_the_new_function_is_kept_and_handles_are_stripped(
    mined: tuple[MineResult, MineResult],
) -> None:
    for result in mined:
        (ex,) = _by_subject(result)["Added a to_string for t, thanks @bob"]
        assert ex.prompt == "add a to_string for t"
        assert ex.stats["prompt_leaks"] == []


def test_each_part_of_a_split_commit_gets_the_clause_it_does(
    mined: tuple[MineResult, MineResult],
) -> None:
    for result in mined:
        parts = _by_subject(result)["add the stats module and use it in report"]
        assert len(parts) >= 2 and all(p.kind == "vcs-part" for p in parts)
        by_file = {("stats.ml" in p.diff, "report.ml" in p.diff): p.prompt for p in parts}
        assert by_file[(True, False)] == "add the stats module"
        assert by_file[(False, True)] == "use it in report"


def test_every_prompt_records_its_source_and_the_report_counts_them(
    mined: tuple[MineResult, MineResult],
) -> None:
    git, hg = mined
    for result in mined:
        assert all(e.stats["prompt_source"] in PROMPT_SOURCES for e in result.examples)
        assert not any(is_update_file(e.prompt) for e in result.examples)
        rep = result.report.to_dict()
        assert rep["update_file_prompts"] == 0 and rep["leak_hits"] == 0
        assert sum(rep["prompt_sources"].values()) == rep["kept"] == len(result.examples)
        assert len(rep["prompt_sample"]) == len(result.examples)  # fewer than 20: all of them
        assert {r["prompt"] for r in rep["prompt_sample"]} == {e.prompt for e in result.examples}
    assert [e.prompt for e in git.examples] == [e.prompt for e in hg.examples]
    assert [e.id for e in git.examples] == [e.id for e in hg.examples]


def test_docs_can_be_kept_by_configuration(tmp_path: Path) -> None:
    repo = make_git(tmp_path / "g")
    cfg = MineConfig(drop_non_code=False)
    result = mine_vcs(repo, "HEAD~5..HEAD~4", cfg)
    (fix,) = result.examples
    assert "CHANGES.md" in fix.diff
    cfg = MineConfig(non_code_globs=["*.md", "lib/glob.ml"])
    result = mine_vcs(repo, "HEAD~5..HEAD~4", cfg)
    assert result.examples == [] and result.report.dropped == {"docs_only": 1}


def test_cli_prints_sources_the_sample_and_progress(tmp_path: Path) -> None:
    repo = make_git(tmp_path / "g")
    runner = CliRunner()
    args = ["mine", "--from-vcs", str(repo), "--range", "HEAD~5..HEAD", "--no-store"]
    res = runner.invoke(cli, args, env={"BACTRIAN_PROGRESS": "1"})
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "[commit-message] fix double star parsing in glob" in out
    assert "dropped: docs_only 2" in out
    assert "prompts: commit-message" in out and "'update FILE' 0 (0%)" in out
    assert "sample of 4 prompts" in out
    assert "mining commits" in res.stderr and "5/5" in res.stderr
    assert "mining commits" not in out
    res = runner.invoke(cli, [*args, "--json"], env={"BACTRIAN_PROGRESS": "0"})
    data = json.loads(res.stdout)
    assert data["report"]["prompt_sources"] == {"commit-message": 4}
    assert res.stderr == ""


def test_label_prints_the_labels_in_the_human_output(tmp_path: Path) -> None:
    repo = make_git(tmp_path / "g")
    args = ["mine", "--from-vcs", str(repo), "--range", "HEAD~5..HEAD~4", "--no-store", "--label"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "[commit-message] fix double star parsing in glob" in lines[0]
    assert lines[1].strip() == "label: base green -> target green"


def test_dataset_build_and_describe_show_progress(tmp_path: Path) -> None:
    repo = make_git(tmp_path / "g")
    runner = CliRunner()
    res = runner.invoke(cli, ["mine", "--from-vcs", str(repo), "--range", "HEAD~5..HEAD"])
    assert res.exit_code == 0, res.output
    on = {"BACTRIAN_PROGRESS": "1"}
    res = runner.invoke(cli, ["dataset", "build", "--out", str(tmp_path / "ds")], env=on)
    assert res.exit_code == 0, res.output
    assert "writing examples.jsonl" in res.stderr and "4/4" in res.stderr
    res = runner.invoke(cli, ["describe"], env=on)
    assert res.exit_code == 0, res.output
    assert "describing" in res.stderr
    assert "commit-message" in res.stdout
