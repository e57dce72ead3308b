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
@click.option(
    "--workspace",
    "workspaces",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Take the examples mined from this workspace's timeline (repeatable).",
)
@click.option(
    "--repo",
    "repos",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Take the examples mined from this repository's history (repeatable).",
)
@click.option("--since", help="Only examples from this time on (2024-05-31, ISO time, epoch s).")
@click.option("--until", help="Only examples before this time.")
@click.option("--heldout-fraction", type=float, help="Latest share of examples held out.")
@click.option("--rl-fraction", type=float, help="Share before the held-out period kept for RL.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def build_cmd(
    out: Path,
    workspaces: tuple[Path, ...],
    repos: tuple[Path, ...],
    since: str | None,
    until: str | None,
    heldout_fraction: float | None,
    rl_fraction: float | None,
    as_json: bool,
) -> None:
    """Build a dataset from the chosen sources (--workspace, --repo, --since/--until; none
    given: everything mined so far): leakage-safe train/rl/heldout splits, JSONL files and a
    manifest recording the selection and the split rule."""
    from bactrian.dataset.splits import Selection, build_dataset, load_dataset_config, parse_time
    from bactrian.dataset.store import ExampleDB

    cfg = load_dataset_config(heldout_fraction=heldout_fraction, rl_fraction=rl_fraction)
    selection = Selection(
        sources=[str(p.expanduser().resolve()) for p in (*workspaces, *repos)],
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
    )
    with ExampleDB() as db:
        manifest = build_dataset(
            out, db.all(), cfg, mining_reports=db.reports(), selection=selection
        )
    if as_json:
        _echo_json(manifest)
        return
    click.echo(f"{manifest['examples']} examples in {out}: {manifest['counts']['by_split']}")
    for row in manifest["sources"]:
        splits = manifest["counts"]["by_source_split"].get(row["source"], {})
        click.echo(f"  {row['source']}: {row['examples']} ({_fmt(splits)})")


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


@dataset.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def sources_cmd(as_json: bool) -> None:
    """The sources (workspaces, repositories) mined so far, with their examples and time
    range: what `dataset build --workspace/--repo` can choose from."""
    import time

    from bactrian.dataset.splits import source_summary
    from bactrian.dataset.store import ExampleDB

    with ExampleDB() as db:
        rows = source_summary(db.all())
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("No mined examples yet: run `bactrian mine` first.")
    for r in rows:
        span = " – ".join(time.strftime("%Y-%m-%d", time.gmtime(r[k])) for k in ("first", "last"))
        click.echo(
            f"{r['source']}  {r['type']}  {r['examples']} examples ({_fmt(r['kinds'])})  {span}"
        )


@dataset.command("stats")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def stats_cmd(path: Path, as_json: bool) -> None:
    """Counts per source, kind, split, prompt source and filter of the dataset in PATH."""
    from bactrian.dataset.splits import dataset_stats

    st = dataset_stats(path)
    if as_json:
        _echo_json(st)
        return
    click.echo(f"examples: {st['examples']}")
    click.echo("by split:  " + _fmt(st["by_split"]))
    click.echo("by kind:   " + _fmt(st["by_kind"]))
    click.echo("by prompt: " + _fmt(st["by_prompt_source"]))
    click.echo("by source:")
    for src, n in st["by_source"].items():
        click.echo(f"  {src}: {n} ({_fmt(st['by_source_split'].get(src, {}))})")
    click.echo(f"filtered:  {_fmt(st['filters'])}")


@dataset.command("list")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["train", "rl", "heldout"]), help="Only this split.")
@click.option("--kind", type=click.Choice(["fix", "change", "vcs-part"]), help="Only this kind.")
@click.option("--source", help="Only sources whose path contains this.")
@click.option("--prompt-source", "prompt_from", help="Only prompts from this source (llm, …).")
@click.option("--grep", help="Only prompts containing this text.")
@click.option(
    "--limit", type=int, default=50, show_default=True, help="At most this many (0: all)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the examples as JSON lines.")
def list_cmd(
    path: Path,
    split: str | None,
    kind: str | None,
    source: str | None,
    prompt_from: str | None,
    grep: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the examples of the dataset in PATH (id, split, kind, prompt source, prompt);
    `bactrian dataset show PATH ID` shows one."""
    from bactrian.dataset.splits import list_examples, prompt_source

    rows = list_examples(
        path, split=split, kind=kind, source=source, prompt_from=prompt_from, grep=grep
    )
    shown = rows[:limit] if limit > 0 else rows
    for e in shown:
        if as_json:
            click.echo(e.to_json())
            continue
        first = (e.prompt or e.description or "").split("\n", 1)[0][:90]
        click.echo(f"{e.id}  {e.split or '-':<7} {e.kind:<8} {prompt_source(e):<15} {first}")
    if not as_json and len(shown) < len(rows):
        click.echo(f"… {len(rows) - len(shown)} more (--limit 0 lists all)")
    elif not as_json and not rows:
        click.echo("no example matches")


@dataset.command("export")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "parquet", "chat", "completion", "verl", "openrlhf"]),
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
    """Export the dataset in PATH per split: JSONL, Hugging Face Parquet, chat messages,
    prompt/completion pairs, or RL data for verl (Parquet) and OpenRLHF (JSONL)."""
    from bactrian.dataset.splits import export_dataset

    for f in export_dataset(path, fmt, out):
        click.echo(str(f))


@dataset.command("show")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("example_id")
@click.option("--chat", is_flag=True, help="Show it rendered as chat messages (JSON).")
@click.option("--json", "as_json", is_flag=True, help="Show it as JSON.")
def show_cmd(path: Path, example_id: str, chat: bool, as_json: bool) -> None:
    """Print one example (by id or id prefix) of the dataset in PATH: readable text (prompt,
    context files, diff), or JSON with --json."""
    from bactrian.dataset.splits import format_example, render_chat, show_example

    ex = show_example(path, example_id)
    if chat:
        _echo_json(render_chat(ex))
    elif as_json:
        _echo_json(ex.to_dict())
    else:
        click.echo(format_example(ex))
