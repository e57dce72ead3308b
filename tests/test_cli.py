"""Every ``bactrian`` command and subcommand has help, and library errors become one clean
line at the CLI edge."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from bactrian.cli import COMMANDS, cli


def _walk(cmd: click.Command, path: list[str]) -> list[list[str]]:
    out = [path]
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, f"{' '.join(path + [name])} cannot be loaded"
            out += _walk(sub, path + [name])
    return out


def test_every_command_has_help() -> None:
    runner = CliRunner()
    paths = _walk(cli, [])
    assert len(paths) > len(COMMANDS), "subcommands are missing"
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        cmd: click.Command = cli
        ctx = click.Context(cli)
        for name in path:
            assert isinstance(cmd, click.Group)
            sub = cmd.get_command(ctx, name)
            assert sub is not None
            cmd = sub
        assert (cmd.help or cmd.short_help or "").strip(), (
            f"'bactrian {' '.join(path)}' has no help text"
        )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_top_level_commands_load(name: str) -> None:
    assert cli.get_command(click.Context(cli), name) is not None


def test_unknown_command_is_a_clear_error() -> None:
    result = CliRunner().invoke(cli, ["snapshott"])
    assert result.exit_code != 0
    assert "No such command" in result.output
