"""``bactrian build …`` commands (the group the top-level CLI mounts as ``build``)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bactrian.buildstatus.cli import group

from .projects import write_project


def test_every_build_command_has_help() -> None:
    runner = CliRunner()
    for args in ([], ["probe"], ["parse"], ["watch"]):
        res = runner.invoke(group, [*args, "--help"])
        assert res.exit_code == 0 and "Usage:" in res.output, (args, res.output)


def test_probe_json_on_a_red_dune_project(tmp_path: Path) -> None:
    ws = write_project(tmp_path, {"lib/bad.ml": "let x = 1 +\n"})
    res = CliRunner().invoke(group, ["probe", str(ws), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["state"] == "red" and data["probe"] == "dune"
    assert [d["kind"] for d in data["diagnostics"]] == ["syntax"]


def test_probe_text_with_a_missing_tool(tmp_path: Path) -> None:
    res = CliRunner().invoke(group, ["probe", str(tmp_path), "--build-cmd", "no-such-tool-qq"])
    assert res.exit_code == 0
    assert res.output.startswith("unknown (command")
    assert "no-such-tool-qq" in res.output


def test_parse_reads_a_log_from_stdin() -> None:
    log = 'File "_build/default/a.ml", line 2, characters 4-7:\nError: Unbound value foo\n'
    res = CliRunner().invoke(group, ["parse", "--json"], input=log)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["class"] == "type"
    assert data["diagnostics"][0]["file"] == "a.ml" and data["diagnostics"][0]["kind"] == "unbound"
    res = CliRunner().invoke(group, ["parse"], input=log)
    assert "a.ml:2:4: error: Unbound value foo" in res.output


def test_watch_of_a_missing_tool_exits_127(tmp_path: Path) -> None:
    res = CliRunner().invoke(group, ["watch", "-C", str(tmp_path), "--", "no-such-watcher-qq"])
    assert res.exit_code == 127
