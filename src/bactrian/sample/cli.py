"""``bactrian sample …``: thin click adapters over :mod:`bactrian.sample`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bactrian.sample.history import last_green_step, write_history
from bactrian.sample.replay import DEFAULT_SPEED, replay
from bactrian.sample.script import Session, Step
from bactrian.sample.session import EXPECTED_EPISODES, SESSION
from bactrian.sample.workspace import copy_workspace, workspace_path


@click.group()
def group() -> None:
    """The bundled OCaml sample workspace (tally) and its scripted editing session."""


def _snapshot_record(index: int, step: Step, snap: Any) -> dict[str, Any]:
    first = snap.build.diagnostics[0].headline() if snap.build.diagnostics else ""
    return {
        "seq": snap.seq,
        "id": snap.id,
        "step": index,
        "title": step.title,
        "at_s": step.at_s,
        "time": snap.time,
        "state": snap.build.state.value,
        "duration_s": snap.build.duration_s,
        "changed_files": snap.changed_files,
        "first_diagnostic": first,
    }


@group.command("replay")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--speed",
    type=float,
    default=DEFAULT_SPEED,
    show_default=True,
    help="Scripted seconds per wall-clock second ('inf': do not wait at all).",
)
@click.option(
    "--start-time",
    type=float,
    default=None,
    help="Unix time recorded for step 0 (default: now minus the session length); step k is recorded at start + at_s.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON at the end.")
def replay_cmd(dest: Path, speed: float, start_time: float | None, as_json: bool) -> None:
    """Copy the sample to DEST (new or empty) and play the scripted session into it while the
    real snapshotter records one snapshot per step with real dune builds.

    Prints one line per snapshot: seq, scripted time, green/red, first diagnostic. Afterwards
    `bactrian snapshot list DEST` shows the timeline and `bactrian mine DEST` mines it."""
    progress = None if as_json else click.echo
    snaps = replay(dest, speed=speed, start_time=start_time, progress=progress)
    if as_json:
        records = [_snapshot_record(i, SESSION[i], s) for i, s in enumerate(snaps)]
        workspace = snaps[0].workspace if snaps else str(dest)
        click.echo(json.dumps({"workspace": workspace, "snapshots": records}, indent=2))
    else:
        red = sum(1 for s in snaps if s.build.state.value == "red")
        click.echo(f"{len(snaps)} snapshots ({red} red) recorded for {snaps[0].workspace}")


@group.command("copy")
@click.argument("dest", type=click.Path(path_type=Path))
def copy_cmd(dest: Path) -> None:
    """Copy the sample workspace to DEST (which must not exist or be empty)."""
    out = copy_workspace(dest)
    click.echo(str(out))


@group.command("path")
def path_cmd() -> None:
    """Print where the shipped sample workspace lives (read-only: copy it before building)."""
    click.echo(str(workspace_path()))


def _describe(session: Session) -> list[str]:
    lines = []
    for i, step in enumerate(session):
        files = ", ".join(f"{e.op} {e.path}" for e in step.edits) or "(no edits)"
        lines.append(f"{i:>2}  t=+{step.at_s:<5.0f} {step.expect:<6} {step.title}")
        lines.append(f"{'':>11}{files}")
    lines.append("")
    lines.append("Expected episodes (steps are session step numbers; store seq = step + 1):")
    for ep in EXPECTED_EPISODES:
        lines.append(
            f"  {ep.kind:<6} steps {ep.start_step:>2}-{ep.end_step:<2} "
            f"diff {ep.base_step:>2}->{ep.target_step:<2} {', '.join(sorted(ep.files))}"
            f"  ({ep.note})"
        )
    return lines


@group.command("session")
@click.option("--json", "as_json", is_flag=True, help="The full script (edits included) as JSON.")
def session_cmd(as_json: bool) -> None:
    """Show the scripted editing session and the episodes mining its replay must yield.

    `expect` is the build state the script intends for each step — a test oracle only; the
    replay records what real dune builds report."""
    if as_json:
        data = SESSION.to_dict()
        data["expected_episodes"] = [ep.to_dict() for ep in EXPECTED_EPISODES]
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"Session {SESSION.name!r}: {len(SESSION)} steps over {SESSION.duration_s:.0f} s")
    for line in _describe(SESSION):
        click.echo(line)


@group.command("history")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--vcs", "kind", type=click.Choice(["git", "hg"]), default="git", show_default=True)
@click.option(
    "--steps",
    type=int,
    default=None,
    help="Commit steps 0..N of the session (default: up to its last green step).",
)
@click.option("--green-only", is_flag=True, help="Commit only the green steps.")
def history_cmd(dest: Path, kind: str, steps: int | None, green_only: bool) -> None:
    """Write the sample's evolution into a new git or Mercurial repository at DEST: one commit
    per scripted step (its title as the message) — a small dune repository with real history
    to try `bactrian quickstart DEST` or `bactrian mine --from-vcs DEST` on."""
    write_history(dest, kind=kind, steps=steps, green_only=green_only)
    last = steps if steps is not None else last_green_step()
    n = sum(1 for s in SESSION.steps[: last + 1] if s.expect == "green" or not green_only)
    click.echo(f"{kind} repository with {n} commits of the sample's evolution in {dest}")
