"""``bactrian mine`` and ``bactrian describe``: thin click adapters over
:mod:`bactrian.mine.mining` and :mod:`bactrian.mine.describe`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from bactrian.errors import ConfigError


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@click.command()
@click.argument("workspaces", nargs=-1, type=click.Path(path_type=Path))
@click.option("--from-vcs", "repo", type=click.Path(path_type=Path), help="Mine this git/hg repo.")
@click.option(
    "--range", "rev_range", help="git range (A..B) or Mercurial revset (with --from-vcs)."
)
@click.option(
    "--squash",
    is_flag=True,
    help="With --from-vcs: the whole range is one change "
    "(split into parts when large) instead of one per commit.",
)
@click.option("--vcs", type=click.Choice(["git", "hg"]), help="Repository kind (auto-detected).")
@click.option("--max-lines", type=int, help="Drop diffs with more changed lines (default 100).")
@click.option("--max-files", type=int, help="Drop diffs touching more files (default 5).")
@click.option(
    "--describer",
    type=click.Choice(["deterministic", "llm"]),
    help="Prompt writer (default: llm when a model is configured, else deterministic).",
)
@click.option(
    "--label",
    is_flag=True,
    help="Build each kept example's base and target to label "
    "them (real builds in a temporary directory).",
)
@click.option(
    "--build-cmd",
    help="Build command for --label (default: dune when the tree has a dune-project).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Mine workspaces one by one, or in parallel on Ray.",
)
@click.option("--no-store", is_flag=True, help="Do not add the examples to the examples database.")
@click.option("--json", "as_json", is_flag=True, help='Print {"examples": [...], "report": …}.')
def mine(
    workspaces: tuple[Path, ...],
    repo: Path | None,
    rev_range: str | None,
    squash: bool,
    vcs: str | None,
    max_lines: int | None,
    max_files: int | None,
    describer: str | None,
    label: bool,
    build_cmd: str | None,
    executor: str,
    no_store: bool,
    as_json: bool,
) -> None:
    """Mine (context, prompt, diff) examples from the snapshot timelines of WORKSPACES, or from
    VCS history with --from-vcs REPO --range RANGE. Examples are filtered, deduplicated,
    described and added to the examples database (see `bactrian dataset build`)."""
    from bactrian.dataset.store import ExampleDB
    from bactrian.mine.config import load_mine_config
    from bactrian.mine.mining import mine_vcs, mine_workspaces

    cfg = load_mine_config(max_changed_lines=max_lines, max_files=max_files, describer=describer)
    if repo is None and not workspaces:
        raise click.UsageError("Give WORKSPACE… or --from-vcs REPO --range RANGE.")
    if repo is not None and (workspaces or not rev_range):
        raise click.UsageError("--from-vcs takes --range RANGE and no WORKSPACE arguments.")
    db = None if no_store else ExampleDB()
    work = tempfile.TemporaryDirectory(prefix="bactrian-label-") if label else None
    labeller = None
    if work is not None:
        from bactrian.mine.label import label_examples

        def labeller(exs: list[Any]) -> Any:
            assert work is not None
            return label_examples(exs, Path(work.name), build_cmd=build_cmd)

    try:
        if repo is not None:
            assert rev_range is not None
            result = mine_vcs(
                repo, rev_range, cfg, kind=vcs, db=db, label=labeller, squash_range=squash
            )
        else:
            result = mine_workspaces(
                list(workspaces), cfg, db=db, label=labeller, executor=executor
            )
    finally:
        if db:
            db.close()
        if work is not None:
            work.cleanup()
    if as_json:
        _echo_json(result.to_dict())
        return
    for ex in result.examples:
        first = ex.prompt.split("\n", 1)[0]
        click.echo(f"{ex.id}  {ex.kind:<8} {ex.stats.get('steps', '')}  {first}")
    rep = result.report.to_dict()
    dropped = ", ".join(f"{k} {v}" for k, v in rep["dropped"].items()) or "none"
    click.echo(
        f"{rep['candidates']} candidates, {rep['kept']} kept ({result.stored} new in the "
        f"database); dropped: {dropped}"
    )


@click.command()
@click.option(
    "--backend",
    "describer",
    type=click.Choice(["deterministic", "llm"]),
    help="deterministic (offline) or llm (needs a model; default when one is configured).",
)
@click.option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")
@click.option(
    "--model",
    help="A named model (`bactrian models list`, e.g. smollm2) or the server's model name.",
)
@click.option("--missing-only", is_flag=True, help="Only examples without a prompt.")
@click.option("--json", "as_json", is_flag=True, help="Print counts as JSON.")
def describe(
    describer: str | None,
    base_url: str | None,
    model: str | None,
    missing_only: bool,
    as_json: bool,
) -> None:
    """(Re)write the description and editor-style prompt of every mined example, with a model
    (two steps: detailed description, then a short prompt; filtered and leak-checked) or
    deterministically from the diagnostics and the diff."""
    from bactrian.dataset.store import ExampleDB
    from bactrian.mine.describe import describe_examples, make_describer
    from bactrian.models import load_model_config, named_models

    if model and not base_url and model in named_models():  # a named model, e.g. smollm2
        mcfg = named_models()[model]
    else:
        mcfg = load_model_config(base_url=base_url, model=model)
    if describer == "llm" and not mcfg.configured:
        raise ConfigError("--backend llm needs a model: pass --base-url (and --model).")
    d = make_describer(describer or "", mcfg)
    with ExampleDB() as db:
        examples = db.all()
        counts = describe_examples(examples, d, only_missing=missing_only)
        db.update(examples)
    counts["describer"] = d.name
    if as_json:
        _echo_json(counts)
    else:
        click.echo(f"described {counts['described']} examples with {d.name}: {counts['by_source']}")
        if counts["rejected"]:
            click.echo(f"model prompts rejected (fell back): {counts['rejected']}")
