"""``bactrian dataset …``: thin click adapters over :mod:`bactrian.dataset.splits` and the
example store :mod:`bactrian.dataset.store`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@click.group()
def dataset() -> None:
    """Build, inspect and export datasets of mined examples."""


@dataset.command("build")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write the dataset into.",
)
@click.option("--heldout-fraction", type=float, help="Latest share of examples held out.")
@click.option("--rl-fraction", type=float, help="Share before the held-out period kept for RL.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def build_cmd(
    out: Path, heldout_fraction: float | None, rl_fraction: float | None, as_json: bool
) -> None:
    """Build a dataset from everything mined so far: leakage-safe train/rl/heldout splits,
    JSONL files and a manifest recording the split rule."""
    from bactrian.dataset.splits import build_dataset, load_dataset_config
    from bactrian.dataset.store import ExampleDB

    cfg = load_dataset_config(heldout_fraction=heldout_fraction, rl_fraction=rl_fraction)
    with ExampleDB() as db:
        manifest = build_dataset(out, db.all(), cfg, mining_reports=db.reports())
    if as_json:
        _echo_json(manifest)
    else:
        click.echo(f"{manifest['examples']} examples in {out}: {manifest['counts']['by_split']}")


@dataset.command("stats")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def stats_cmd(path: Path, as_json: bool) -> None:
    """Counts per kind, split and filter of the dataset in PATH."""
    from bactrian.dataset.splits import dataset_stats

    st = dataset_stats(path)
    if as_json:
        _echo_json(st)
        return
    click.echo(f"examples: {st['examples']}")
    click.echo("by split: " + ", ".join(f"{k} {v}" for k, v in sorted(st["by_split"].items())))
    click.echo("by kind:  " + ", ".join(f"{k} {v}" for k, v in sorted(st["by_kind"].items())))
    filt = ", ".join(f"{k} {v}" for k, v in sorted(st["filters"].items())) or "none"
    click.echo(f"filtered: {filt}")


@dataset.command("export")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "parquet", "chat", "completion"]),
    default="jsonl",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory (default PATH/export/FORMAT).",
)
def export_cmd(path: Path, fmt: str, out: Path | None) -> None:
    """Export the dataset in PATH per split: JSONL, Hugging Face Parquet, chat messages or
    prompt/completion pairs."""
    from bactrian.dataset.splits import export_dataset

    for f in export_dataset(path, fmt, out):
        click.echo(str(f))


@dataset.command("show")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("example_id")
@click.option("--chat", is_flag=True, help="Show it rendered as chat messages.")
def show_cmd(path: Path, example_id: str, chat: bool) -> None:
    """Print one example (by id or id prefix) of the dataset in PATH as JSON."""
    from bactrian.dataset.splits import render_chat, show_example

    ex = show_example(path, example_id)
    _echo_json(render_chat(ex) if chat else ex.to_dict())
