"""``bactrian snapshot …``: thin click adapters over :mod:`bactrian.snapshot`."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from bactrian.errors import StoreCorruptError
from bactrian.snapshot.config import load_config
from bactrian.snapshot.store import Snapshot, list_workspaces, open_store

WS = click.argument("workspace", type=click.Path(file_okay=False, path_type=Path))


def _fmt_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _line(s: Snapshot) -> str:
    head = s.headline()
    return (
        f"{s.seq:>4}  {_fmt_time(s.time)}  {s.build.state.value:<7}  "
        f"{s.changed_files:>4} file{'s' if s.changed_files != 1 else ' '}  {s.id[:10]}"
        + (f"  {head}" if head else "")
    )


def _emit(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True))


@click.group()
def group() -> None:
    """Record workspace snapshots and build status.

    A snapshot is the workspace's file tree (respecting .gitignore/.hgignore, without _build,
    binary, huge or secret-looking files) plus its build status, stored outside the workspace.
    """


@group.command()
@WS
@click.option("--build-cmd", help="Shell command whose result is the build status.")
@click.option("--probe", help="Build probe name (auto, dune, command, dune-watch, none).")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
def take(workspace: Path, build_cmd: str | None, probe: str | None, as_json: bool) -> None:
    """Take one snapshot of WORKSPACE now (nothing new if the tree did not change)."""
    from bactrian.snapshot.take import take_snapshot

    snap = take_snapshot(workspace, config=load_config(build_cmd=build_cmd, probe=probe))
    if as_json:
        _emit(snap.to_dict())
    else:
        click.echo(_line(snap))


@group.command()
@WS
@click.option("--interval", type=float, help="Seconds between snapshots (default 20).")
@click.option("--build-cmd", help="Shell command whose result is the build status.")
@click.option("--probe", help="Build probe name (auto, dune, command, dune-watch, none).")
@click.option("--foreground", is_flag=True, help="Run in this process instead of the background.")
@click.option("--config-json", type=click.Path(dir_okay=False, path_type=Path), hidden=True)
def start(
    workspace: Path,
    interval: float | None,
    build_cmd: str | None,
    probe: str | None,
    foreground: bool,
    config_json: Path | None,
) -> None:
    """Start the snapshot daemon for WORKSPACE (refused if one already runs)."""
    from bactrian.snapshot import daemon

    if config_json is not None:  # the settings a parent `start` resolved for its daemon
        config = daemon.config_from_file(config_json)
    else:
        config = load_config(interval_s=interval, build_cmd=build_cmd, probe=probe)
    if foreground:
        os.nice(10)  # the developer must not notice the recorder (the probe lowers its build too)
        daemon.run_daemon(workspace, config)
        return
    st = daemon.start_daemon(workspace, config)
    click.echo(
        f"Recording {st.workspace} every {config.interval_s:g}s (pid {st.pid}); log: {st.log}"
    )


@group.command()
@WS
def stop(workspace: Path) -> None:
    """Stop the snapshot daemon of WORKSPACE."""
    from bactrian.snapshot import daemon

    if daemon.stop_daemon(workspace, load_config()):
        click.echo(f"Stopped the snapshot daemon of {workspace}.")
    else:
        click.echo(f"No snapshot daemon is running for {workspace}.")


@group.command()
@WS
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(workspace: Path, as_json: bool) -> None:
    """Whether a daemon records WORKSPACE, and how many snapshots exist."""
    from bactrian.snapshot import daemon

    st = daemon.daemon_status(workspace, load_config())
    if as_json:
        _emit(st.to_dict())
        return
    state = f"running (pid {st.pid})" if st.running else "not running"
    last = _fmt_time(st.last_time) if st.last_time else "never"
    click.echo(f"{st.workspace}: daemon {state}; {st.snapshots} snapshots, last {last}")


@group.command(name="list")
@WS
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
def list_(workspace: Path, as_json: bool) -> None:
    """The timeline: seq, time, build state, changed files, first diagnostic."""
    store = open_store(workspace, load_config())
    snaps = store.timeline()
    if as_json:
        _emit([s.to_dict() for s in snaps])
        return
    for s in snaps:
        click.echo(_line(s))


@group.command()
@WS
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.option("--files", is_flag=True, help="Also list the files in the snapshot.")
@click.option("--log", "show_log", is_flag=True, help="Also print the build log.")
def show(workspace: Path, ref: str, as_json: bool, files: bool, show_log: bool) -> None:
    """One snapshot (REF: seq number, negative from the end, or id prefix)."""
    store = open_store(workspace, load_config())
    snap = store.get(ref)
    if as_json:
        out = snap.to_dict()
        if files:
            out["files"] = store.file_list(snap)
        _emit(out)
        return
    b = snap.build
    click.echo(f"snapshot {snap.seq}  {snap.id}\ntime     {_fmt_time(snap.time)}")
    click.echo(f"tree     {snap.tree_id}\nparent   {snap.parent or '-'}")
    click.echo(f"changed  {snap.changed_files} files")
    click.echo(f"build    {b.state.value} in {b.duration_s:.2f}s ({b.probe or '?'}: {b.command})")
    for d in b.diagnostics:
        click.echo(f"  {d.headline()}")
    if files:
        for path in store.file_list(snap):
            click.echo(f"  {path}")
    if show_log and b.log:
        click.echo(b.log)


@group.command()
@WS
@click.argument("a")
@click.argument("b")
@click.argument("paths", nargs=-1)
def diff(workspace: Path, a: str, b: str, paths: tuple[str, ...]) -> None:
    """Unified diff (git style) from snapshot A to snapshot B, optionally for PATHS only."""
    store = open_store(workspace, load_config())
    sys.stdout.write(store.diff(store.get(a), store.get(b), list(paths) or None))


@group.command()
@WS
def fsck(workspace: Path) -> None:
    """Check the store of WORKSPACE; non-zero exit when it is damaged."""
    store = open_store(workspace, load_config())
    problems = store.fsck()
    for p in problems:
        click.echo(p)
    if problems:
        raise StoreCorruptError(
            f"The snapshot store of {workspace} is damaged ({len(problems)} problem(s) above)."
        )
    click.echo(f"{store.root}: ok, {len(store.timeline())} snapshots")


@group.command()
@WS
def reindex(workspace: Path) -> None:
    """Rebuild the SQLite index of WORKSPACE from its store repository."""
    store = open_store(workspace, load_config())
    click.echo(f"Indexed {store.reindex()} snapshots.")


@group.command()
@WS
def gc(workspace: Path) -> None:
    """Pack the store of WORKSPACE (the daemon also does this every few snapshots)."""
    store = open_store(workspace, load_config())
    store.maintain()
    click.echo("Packed.")


@group.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def workspaces(as_json: bool) -> None:
    """Every workspace with recorded snapshots."""
    paths = list_workspaces(load_config())
    if as_json:
        _emit([str(p) for p in paths])
    else:
        for p in paths:
            click.echo(str(p))
