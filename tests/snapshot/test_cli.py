"""``bactrian snapshot …`` through click, end to end on a real git workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.cli import cli
from bactrian.snapshot import open_store
from bactrian.snapshot.cli import group

from .conftest import damage_object, make_git, write


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BACTRIAN_SNAPSHOT_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("BACTRIAN_SNAPSHOT_PROBE", "none")
    return CliRunner()


def _run(runner: CliRunner, *args: str, code: int = 0) -> str:
    res = runner.invoke(cli, ["snapshot", *args])
    assert res.exit_code == code, res.output
    return res.output


def test_take_list_show_diff_fsck(tmp_path: Path, runner: CliRunner) -> None:
    ws = make_git(tmp_path / "ws")
    first = json.loads(_run(runner, "take", str(ws), "--json"))
    assert first["seq"] == 1 and first["build"]["state"] == "unknown"
    write(ws, {"src/shapes.ml": "let broken = (\n"})
    out = _run(
        runner,
        "take",
        str(ws),
        "--build-cmd",
        "echo 'File \"src/shapes.ml\", line 1, characters 14-15:\nError: Syntax error'; exit 2",
    )
    assert out.split()[0] == "2" and "red" in out

    lines = _run(runner, "list", str(ws)).splitlines()
    assert len(lines) == 2 and "unknown" in lines[0]
    assert "red" in lines[1] and "src/shapes.ml:1:14: error: Syntax error" in lines[1]
    timeline = json.loads(_run(runner, "list", str(ws), "--json"))
    assert [s["seq"] for s in timeline] == [1, 2]

    shown = json.loads(_run(runner, "show", str(ws), "2", "--json", "--files"))
    assert shown["build"]["diagnostics"][0]["line"] == 1 and "src/shapes.ml" in shown["files"]
    assert "Syntax error" in _run(runner, "show", str(ws), shown["id"][:7])

    patch = _run(runner, "diff", str(ws), "1", "2")
    assert "+let broken = (" in patch

    assert "ok, 2 snapshots" in _run(runner, "fsck", str(ws))
    store = open_store(ws)
    tree = store.get(2).tree_id
    damage_object(store.git_dir, tree, "corrupt")
    out = _run(runner, "fsck", str(ws), code=1)
    assert "damaged" in out and tree in out

    assert "Indexed 2 snapshots" in _run(runner, "reindex", str(ws))
    assert str(ws.resolve()) in _run(runner, "workspaces")


def test_errors_are_one_line(tmp_path: Path, runner: CliRunner) -> None:
    out = _run(runner, "list", str(tmp_path / "never"), code=1)
    assert out.startswith("Error: No snapshots recorded") and "snapshot take" in out
    ws = make_git(tmp_path / "ws")
    _run(runner, "take", str(ws))
    out = _run(runner, "show", str(ws), "42", code=1)
    assert "No snapshot '42'" in out


def test_status_start_stop(tmp_path: Path, runner: CliRunner) -> None:
    ws = make_git(tmp_path / "ws")
    assert "not running" in _run(runner, "status", str(ws))
    out = _run(runner, "start", str(ws), "--interval", "0.2")
    assert "Recording" in out
    try:
        status = json.loads(_run(runner, "status", str(ws), "--json"))
        assert status["running"] and status["pid"]
        out = _run(runner, "start", str(ws), code=1)
        assert "already recording" in out
    finally:
        assert "Stopped" in _run(runner, "stop", str(ws))
    assert "No snapshot daemon" in _run(runner, "stop", str(ws))


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for name in group.commands:
        res = runner.invoke(cli, ["snapshot", name, "--help"])
        assert res.exit_code == 0 and "Usage:" in res.output, name
