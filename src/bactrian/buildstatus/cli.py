"""``bactrian build …``: thin click adapters over :mod:`bactrian.buildstatus`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

import click

from bactrian.buildstatus.diagnostics import PARSERS, classify, parse_diagnostics
from bactrian.buildstatus.probe import PROBES, choose_probe
from bactrian.buildstatus.watch import DEFAULT_WATCH_COMMAND, run_watch


@click.group(name="build")
def group() -> None:
    """Build probes and compiler diagnostics."""


@group.command("probe")
@click.argument(
    "workspace", type=click.Path(exists=True, file_okay=False, path_type=Path), default="."
)
@click.option(
    "--probe",
    "probe_name",
    default="auto",
    show_default=True,
    help=f"Probe to use: auto, {', '.join(PROBES.names())}.",
)
@click.option("--build-cmd", default=None, help="Shell command to build (implies --probe command).")
@click.option("--timeout", "timeout_s", type=float, default=300.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the BuildResult as JSON.")
def probe_cmd(
    workspace: Path, probe_name: str, build_cmd: str | None, timeout_s: float, as_json: bool
) -> None:
    """Run a build probe on WORKSPACE once and print its verdict and diagnostics."""
    probe = choose_probe(workspace, probe=probe_name, build_cmd=build_cmd, timeout_s=timeout_s)
    result = probe.run(workspace)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(
        f"{result.state.value} ({result.probe}, {result.duration_s:.1f} s): {result.command}"
    )
    for d in result.diagnostics:
        click.echo(f"  {d.headline()}")
    if result.state.value == "unknown":
        click.echo(result.log.strip().splitlines()[-1] if result.log.strip() else "")


@group.command("parse")
@click.argument("log", type=click.File("r"), default="-")
@click.option(
    "--language",
    default="ocaml",
    show_default=True,
    help=f"Diagnostics parser: {', '.join(PARSERS.names())}.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the diagnostics as JSON.")
def parse_cmd(log: IO[str], language: str, as_json: bool) -> None:
    """Parse compiler output from LOG (default: stdin) into diagnostics."""
    diags = parse_diagnostics(log.read(), language)
    if as_json:
        payload = {"class": classify(diags), "diagnostics": [d.to_dict() for d in diags]}
        click.echo(json.dumps(payload, indent=2))
        return
    for d in diags:
        click.echo(d.headline())
    click.echo(f"{len(diags)} diagnostic(s); class: {classify(diags)}")


@group.command(
    "watch", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option(
    "-C",
    "--workspace",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The workspace (dune root) to build.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def watch_cmd(workspace: Path, command: tuple[str, ...]) -> None:
    """Run a watch-mode build (COMMAND, default `dune build -w @check --root .`) on a
    terminal, showing its output, and publish its status for the dune-watch probe so the
    snapshotter needs no second build.

    Example: bactrian build watch -C ~/src/proj -- dune build -w @check @runtest
    """
    code = run_watch(workspace, tuple(command) or DEFAULT_WATCH_COMMAND)
    sys.exit(code)


if __name__ == "__main__":
    group()
