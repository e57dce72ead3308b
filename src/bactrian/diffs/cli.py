"""``bactrian diffs``: check, apply, render and extract multi-file diffs (thin adapters over
:mod:`bactrian.diffs`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bactrian.diffs.apply import apply_patch
from bactrian.diffs.config import load_diffs_config
from bactrian.diffs.extract import extract_changes
from bactrian.diffs.model import ApplyResult
from bactrian.diffs.render import render_tree_diff


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise click.ClickException(f"Cannot read the diff {source}: {exc.strerror}.") from exc


def _report(result: ApplyResult, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.summary())
        for f in result.files:
            rungs = ", ".join(h.rung or "FAILED" for h in f.hunks)
            click.echo(f"  {f.status:9} {f.path}" + (f"  [{rungs}]" if rungs else ""))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def group() -> None:
    """Check and apply multi-file unified diffs (strictly, or leniently with a ladder)."""


_dir = click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
_patch = click.argument("patch", type=str)
_lenient = click.option(
    "--lenient/--strict",
    default=False,
    help="Allow the lenient ladder (offset, recount, whitespace, context, fuzzy).",
)
_json = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@group.command("check")
@_dir
@_patch
@_lenient
@_json
def check(directory: Path, patch: str, lenient: bool, as_json: bool) -> None:
    """Dry run: would PATCH apply to DIRECTORY? (PATCH may be - for stdin.) Exit status 1 when
    it would not."""
    cfg = load_diffs_config()
    result = apply_patch(
        directory,
        _read(patch),
        lenient=lenient,
        dry_run=True,
        limits=cfg.limits(),
        config=cfg.ladder(),
    )
    _report(result, as_json)
    if not result.ok:
        sys.exit(1)


@group.command("apply")
@_dir
@_patch
@_lenient
@_json
def apply(directory: Path, patch: str, lenient: bool, as_json: bool) -> None:
    """Apply PATCH to DIRECTORY: all files or none. (PATCH may be - for stdin.) Exit status 1
    when nothing was applied; the JSON names the rung that applied each hunk."""
    cfg = load_diffs_config()
    result = apply_patch(
        directory, _read(patch), lenient=lenient, limits=cfg.limits(), config=cfg.ladder()
    )
    _report(result, as_json)
    if not result.ok:
        sys.exit(1)


@group.command("render")
@click.argument("old_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("new_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-U", "--context", default=3, show_default=True, help="Lines of context.")
@click.option("--renames", is_flag=True, help="Show files moved unchanged as renames.")
def render(old_dir: Path, new_dir: Path, context: int, renames: bool) -> None:
    """Print the git-style diff turning OLD_DIR into NEW_DIR."""
    click.echo(
        render_tree_diff(old_dir, new_dir, context=context, detect_renames=renames), nl=False
    )


@group.command("extract")
@click.argument("completion", type=str)
@click.option(
    "--files",
    "files_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Tree holding the current files (for search/replace and whole-file outputs).",
)
@_json
def extract(completion: str, files_dir: Path | None, as_json: bool) -> None:
    """Turn a model's output (COMPLETION file, or - for stdin) into a unified diff."""
    text = _read(completion)
    files: dict[str, str] = {}
    if files_dir is not None:
        for p in files_dir.rglob("*"):
            if p.is_file() and ".git" not in p.parts:
                try:
                    files[p.relative_to(files_dir).as_posix()] = p.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    continue
    cs = extract_changes(text, files)
    if as_json:
        out = {"formats": cs.formats, "warnings": cs.warnings, "paths": cs.paths()}
        click.echo(json.dumps({**out, "diff": cs.render()}, indent=2))
    else:
        click.echo(cs.render(), nl=False)
    if not cs:
        sys.exit(1)
