"""No traceback anywhere in ``bactrian``: every subcommand (the click tree under
``bactrian.cli.COMMANDS``, walked, so a new command is covered by itself) is run on bad
arguments — missing files, nonexistent paths, a file where a directory belongs, garbage values
for every typed option, an unknown option — and must end with a clean error (exit status
other than 0 or a handled one, never an uncaught exception) and no "Traceback" in its output.
"""

from __future__ import annotations

import importlib
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import click
import pytest
from click.testing import CliRunner

from bactrian.cli import COMMANDS, cli

GARBAGE = "@@garbage%%"
# commands that, given arguments that are valid enough, run until stopped (a daemon, a watch
# loop): they get the bad-argument cases but not the "existing directory" one
LONG_RUNNING = {("snapshot", "start"), ("build", "watch")}
# path-typed parameters that exist must be directories for these click types
_DIR_TYPES = ("directory",)


def _leaves() -> Iterator[tuple[tuple[str, ...], click.Command]]:
    def walk(
        cmd: click.Command, path: tuple[str, ...]
    ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
        if isinstance(cmd, click.Group):
            for name, sub in sorted(cmd.commands.items()):
                yield from walk(sub, (*path, name))
        else:
            yield path, cmd

    for name, (module, attr, _) in sorted(COMMANDS.items()):
        yield from walk(getattr(importlib.import_module(module), attr), (name,))


LEAVES = list(_leaves())


def _positional(param: click.Argument, where: dict[str, Path], mode: str) -> list[str]:
    """Values for one positional argument. ``missing``: paths that do not exist (under a
    regular file, so nothing can create them); ``existing``: an empty directory where a
    directory is asked for, a missing file elsewhere."""
    kind = param.type.name
    if isinstance(param.type, click.Path) or kind in ("directory", "file", "filename", "path"):
        if mode == "existing" and kind in _DIR_TYPES:
            value = str(where["dir"])
        else:
            value = str(where["file"] / "missing" / "x.diff")
    else:
        value = GARBAGE
    if param.nargs == -1 or param.nargs > 1:
        return [value, value] if param.nargs == -1 else [value] * param.nargs
    return [value]


def _bad_option_value(opt: click.Option, where: dict[str, Path]) -> str | None:
    """A value click or the command must refuse, or None for free text."""
    t = opt.type
    if isinstance(t, click.Path):
        return str(where["file"] / "missing")
    if isinstance(t, click.File):
        return str(where["file"] / "missing")
    if isinstance(t, (click.Choice, click.types.IntParamType, click.types.FloatParamType)):
        return GARBAGE
    if isinstance(t, (click.IntRange, click.FloatRange)):
        return "-99999"
    return None


def _cases() -> Iterator[tuple[str, tuple[str, ...], str, str | None]]:
    """(id, command path, mode, option) for every bad-argument case."""
    for path, cmd in LEAVES:
        args = [p for p in cmd.params if isinstance(p, click.Argument)]
        opts = [p for p in cmd.params if isinstance(p, click.Option) and not p.is_flag]
        name = " ".join(path)
        yield f"{name} --unknown", path, "unknown", None
        if args:
            yield f"{name} missing-paths", path, "missing", None
            if path not in LONG_RUNNING and any(a.type.name in _DIR_TYPES for a in args):
                yield f"{name} existing-dir", path, "existing", None
        for opt in opts:
            if opt.opts[0] in ("--help",):
                continue
            typed = not isinstance(opt.type, click.types.StringParamType)
            if typed or args:  # free text on a command with no argument could just run
                yield f"{name} {opt.opts[0]}", path, "option", opt.name


CASES = list(_cases())


def _argv(
    path: tuple[str, ...], mode: str, opt_name: str | None, where: dict[str, Path]
) -> list[str]:
    cmd = dict(LEAVES)[path]
    args = [p for p in cmd.params if isinstance(p, click.Argument)]
    argv = list(path)
    positional: list[str] = []
    for a in args:
        positional += _positional(a, where, "existing" if mode == "existing" else "missing")
    if mode == "unknown":
        return [*argv, "--no-such-option-anywhere", *positional]
    if mode == "option":
        opt = next(p for p in cmd.params if p.name == opt_name)
        assert isinstance(opt, click.Option)
        value = _bad_option_value(opt, where)
        argv += [opt.opts[0], GARBAGE if value is None else value]
    return [*argv, *positional]


class _Hung(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hung("the command ran for 120 s on bad arguments")


@pytest.mark.parametrize(("case", "path", "mode", "opt"), CASES, ids=[c[0] for c in CASES])
def test_no_traceback_on_bad_arguments(
    case: str,
    path: tuple[str, ...],
    mode: str,
    opt: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACTRIAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("BACTRIAN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    where = {"dir": tmp_path / "empty", "file": tmp_path / "a-file"}
    where["dir"].mkdir()
    where["file"].write_text("not a directory\n")
    argv = _argv(path, mode, opt, where)
    runner = CliRunner()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(120)
    try:
        result = runner.invoke(cli, argv, catch_exceptions=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    out = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"bactrian {' '.join(argv)} raised {type(result.exception).__name__}: "
        f"{result.exception}\n{out}"
    )
    assert "Traceback" not in out, f"bactrian {' '.join(argv)}:\n{out}"
    if mode == "unknown":  # a usage error, not a run
        assert result.exit_code != 0, f"bactrian {' '.join(argv)} exited 0:\n{out}"


def test_every_command_is_covered() -> None:
    covered = {c[1] for c in CASES}
    assert covered == {p for p, _ in LEAVES}
    assert ("ces", "eval") in covered and len(covered) >= 30


def test_ces_eval_on_a_missing_diff_file_is_one_clear_line(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    result = CliRunner().invoke(cli, ["ces", "eval", str(base), str(tmp_path / "nope.diff")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "does not exist" in result.output and "nope.diff" in result.output
