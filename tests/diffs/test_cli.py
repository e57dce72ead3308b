"""``bactrian diffs check/apply/render/extract`` through the real command group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.cli import cli

BARE = "--- a/a.ml\n+++ b/a.ml\n@@\n let a = 1\n-let b = 2\n+let b = 3\n"


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "w"
    root.mkdir()
    (root / "a.ml").write_text("let a = 1\nlet b = 2\n")
    return root


def test_check_is_a_dry_run_with_rungs_in_json(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (tmp_path / "p.diff").write_text(BARE)
    runner = CliRunner()
    strict = runner.invoke(cli, ["diffs", "check", str(root), str(tmp_path / "p.diff")])
    assert strict.exit_code == 1 and "NOT applied" in strict.output
    res = runner.invoke(
        cli, ["diffs", "check", str(root), str(tmp_path / "p.diff"), "--lenient", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["ok"] and data["dry_run"]
    assert data["files"][0]["hunks"][0]["rung"] == "recount"
    assert (root / "a.ml").read_text() == "let a = 1\nlet b = 2\n"


def test_apply_from_stdin(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    res = CliRunner().invoke(cli, ["diffs", "apply", str(root), "-", "--lenient"], input=BARE)
    assert res.exit_code == 0, res.output
    assert "recount" in res.output
    assert (root / "a.ml").read_text() == "let a = 1\nlet b = 3\n"


def test_apply_failure_and_unsafe_diff_exit_non_zero(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    runner = CliRunner()
    bad = BARE.replace("let b = 2", "let q = 9")
    res = runner.invoke(cli, ["diffs", "apply", str(root), "-", "--lenient", "--json"], input=bad)
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert not data["ok"] and data["files"][0]["hunks"][0]["rung"] is None
    evil = "--- /dev/null\n+++ b/../evil.ml\n@@ -0,0 +1 @@\n+x\n"
    res = runner.invoke(cli, ["diffs", "apply", str(root), "-"], input=evil)
    assert res.exit_code == 1 and "Error: Refusing the diff" in res.output
    assert not (tmp_path / "evil.ml").exists()
    res = runner.invoke(cli, ["diffs", "apply", str(root), "-"], input="no diff at all\n")
    assert res.exit_code == 1 and "line 1:" in res.output


def test_render_and_extract(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    new = tmp_path / "new"
    new.mkdir()
    (new / "a.ml").write_text("let a = 1\nlet b = 20\n")
    runner = CliRunner()
    res = runner.invoke(cli, ["diffs", "render", str(root), str(new)])
    assert res.exit_code == 0 and "+let b = 20" in res.output
    completion = "a.ml\n<<<<<<< SEARCH\nlet b = 2\n=======\nlet b = 22\n>>>>>>> REPLACE\n"
    res = runner.invoke(
        cli, ["diffs", "extract", "-", "--files", str(root), "--json"], input=completion
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["formats"] == ["search-replace"] and "+let b = 22" in data["diff"]


def test_limits_come_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path)
    monkeypatch.setenv("BACTRIAN_DIFFS_MAX_FILE_BYTES", "5")
    res = CliRunner().invoke(cli, ["diffs", "check", str(root), "-", "--lenient"], input=BARE)
    assert res.exit_code == 1 and "max_file_bytes" in res.output
    monkeypatch.setenv("BACTRIAN_DIFFS_FUZZY_THRESHOLD", "7")
    res = CliRunner().invoke(cli, ["diffs", "check", str(root), "-"], input=BARE)
    assert res.exit_code == 1 and "between 0 and 1" in res.output
