from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bactrian.cli import cli
from tests.mine.repos import make_git
from tests.models.fake_openai import FakeOpenAI


def test_mine_from_vcs_json_then_dataset_commands(tmp_path: Path) -> None:
    repo = make_git(tmp_path / "g")
    runner = CliRunner()
    res = runner.invoke(cli, ["mine", "--from-vcs", str(repo), "--range", "HEAD~4..HEAD", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["examples"] and all({"kind", "diff"} <= set(e) for e in data["examples"])
    assert data["report"]["kept"] == len(data["examples"])

    out = tmp_path / "ds"
    res = runner.invoke(cli, ["dataset", "build", "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["dataset", "stats", str(out), "--json"])
    assert json.loads(res.output)["examples"] == len(data["examples"])
    res = runner.invoke(cli, ["dataset", "stats", str(out)])
    assert "by split:" in res.output and "by kind:" in res.output
    res = runner.invoke(cli, ["dataset", "export", str(out), "--format", "chat"])
    assert res.exit_code == 0 and "chat" in res.output
    first = data["examples"][0]["id"]
    res = runner.invoke(cli, ["dataset", "show", str(out), first, "--json"])
    assert json.loads(res.output)["id"] == first


def test_describe_with_llm_backend_over_loopback(tmp_path: Path) -> None:
    repo = make_git(tmp_path / "g")
    runner = CliRunner()
    res = runner.invoke(cli, ["mine", "--from-vcs", str(repo), "--range", "HEAD~4..HEAD~3"])
    assert res.exit_code == 0, res.output
    assert "1 kept" in res.output
    with FakeOpenAI(["Adds a string conversion.", "add a to_string for t"]) as server:
        res = runner.invoke(
            cli,
            [
                "describe",
                "--backend",
                "llm",
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--json",
            ],
        )
    assert res.exit_code == 0, res.output
    # the commit's own subject stays the prompt; the model writes the detailed description
    assert json.loads(res.output)["by_source"] == {"commit-message": 1}
    from bactrian.dataset.store import ExampleDB

    with ExampleDB() as db:
        (ex,) = db.all()
    assert ex.prompt == "add Money.to_string"
    assert ex.description == "Adds a string conversion."


def test_errors_are_one_clean_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["mine", "--from-vcs", str(tmp_path), "--range", "HEAD"])
    assert res.exit_code == 1 and "neither a git nor a Mercurial" in res.output
    res = runner.invoke(cli, ["mine"])
    assert res.exit_code == 2
    res = runner.invoke(cli, ["dataset", "build", "--out", str(tmp_path / "d")])
    assert res.exit_code == 1 and "No mined examples" in res.output


def test_mining_a_workspace_without_snapshots_says_what_to_do(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["mine", str(tmp_path)])
    assert res.exit_code == 1
    assert "No snapshots recorded" in res.output and "snapshot take" in res.output
