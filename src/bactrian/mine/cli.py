"""``bactrian mine`` and ``bactrian describe``: thin click adapters over
:mod:`bactrian.mine.mining` and :mod:`bactrian.mine.describe`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bactrian.errors import ConfigError


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


# options that only mean something for one of the two sources
VCS_ONLY = ("rev_range", "squash", "vcs")
WORKSPACE_ONLY = ("executor",)


def _refuse_options_that_do_not_apply(ctx: click.Context, *, from_vcs: bool) -> None:
    """An option given on the command line that the chosen source ignores is an error, not
    silently dropped."""
    wrong = WORKSPACE_ONLY if from_vcs else VCS_ONLY
    given = [
        p
        for p in ctx.command.params
        if p.name in wrong
        and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        flag = max(given[0].opts, key=len)
        if from_vcs:
            raise click.UsageError(
                f"{flag} does not apply to --from-vcs (it mines snapshot timelines of "
                "WORKSPACEs); drop it."
            )
        raise click.UsageError(f"{flag} applies only with --from-vcs REPO; drop it.")


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
    help="Label each example's base and target with real builds through the CES's warm "
    "trees (one per base; every part of a split commit is checked).",
)
@click.option(
    "--build-cmd",
    help="Build command for --label (default: dune when the tree has a dune-project).",
)
@click.option(
    "--only-packages",
    help="With --label: build only these dune packages (comma-separated); default: the "
    "scope `bactrian doctor` saved.",
)
@click.option(
    "--exclude-dir",
    "exclude_dirs",
    multiple=True,
    help="With --label: leave this directory out of the build (repeatable).",
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
    only_packages: str | None,
    exclude_dirs: tuple[str, ...],
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
    if (only_packages or exclude_dirs) and not label:
        raise click.UsageError("--only-packages and --exclude-dir go with --label.")
    _refuse_options_that_do_not_apply(click.get_current_context(), from_vcs=repo is not None)
    db = None if no_store else ExampleDB()
    labeller = None
    if label:
        from bactrian.dune import BuildScope
        from bactrian.mine.label import Labeller

        scope = None
        if only_packages or exclude_dirs:
            pkgs = [p.strip() for p in (only_packages or "").split(",") if p.strip()]
            scope = BuildScope(only_packages=pkgs, exclude_dirs=list(exclude_dirs))
        labeller = Labeller(scope=scope, build_cmd=build_cmd)
    try:
        if repo is not None:
            assert rev_range is not None
            result = mine_vcs(
                repo,
                rev_range,
                cfg,
                kind=vcs,
                db=db,
                label=labeller.label_examples if labeller else None,
                squash_range=squash,
                checker=labeller,
            )
        else:
            result = mine_workspaces(
                list(workspaces),
                cfg,
                db=db,
                label=labeller.label_examples if labeller else None,
                executor=executor,
            )
    finally:
        if db:
            db.close()
    if labeller is not None:
        result.labels["red_bases"] = labeller.red_bases
        result.labels["warm_trees"] = labeller.warm_trees
        result.labels["jobs"] = labeller.jobs
    if as_json:
        _echo_json(result.to_dict())
        return
    for line in human_lines(result, labelled=labeller is not None):
        click.echo(line)


def human_lines(result: Any, *, labelled: bool = False) -> list[str]:
    """The human output of ``bactrian mine``: one line per example (id, kind, steps, prompt
    source, instruction), a fix's diagnostics whole and indented (never cut at the first line
    break: a type error's expected type is on the next one), labels when built, then the
    report: counts, drops, prompts by source and a sample of 20 prompts to audit."""
    from bactrian.mine.prompts import instruction

    lines = []
    for ex in result.examples:
        source = ex.stats.get("prompt_source", "")
        lines.append(
            f"{ex.id}  {ex.kind:<8} {ex.stats.get('steps', '')}  [{source}] "
            f"{instruction(ex.prompt)}"
        )
        rest = ex.prompt.strip()[len(instruction(ex.prompt)) :].strip()
        if rest:
            lines += ["    " + ln for ln in rest.splitlines()]
        if labelled or "base_build" in ex.stats:
            lines += _label_lines(ex.stats)
    rep = result.report.to_dict()
    dropped = ", ".join(f"{k} {v}" for k, v in rep["dropped"].items()) or "none"
    lines.append(
        f"{rep['candidates']} candidates, {rep['kept']} kept ({result.stored} new in the "
        f"database); dropped: {dropped}"
    )
    notes = {k: v for k, v in result.notes.items() if not k.startswith("context_empty: ")}
    if notes:
        lines.append("notes: " + ", ".join(f"{k} {v}" for k, v in sorted(notes.items())))
    if labelled:
        lab = {k: v for k, v in result.labels.items() if isinstance(v, int)}
        lines.append("labels: " + (", ".join(f"{k} {v}" for k, v in sorted(lab.items())) or "none"))
        for red in result.labels.get("red_bases", []):
            lines.append(f"red base {red['base']}: {red['hint']}")
    lines += result.report.prompt_lines()
    return lines


def _label_lines(stats: dict[str, Any]) -> list[str]:
    base, target = stats.get("base_build"), stats.get("target_build")
    if base is None and target is None:
        return ["    label: not built"]
    out = [f"    label: base {base or '?'} -> target {target or '?'}"]
    for side in ("target", "base"):
        diags = stats.get(f"{side}_diagnostics") or []
        if diags and stats.get(f"{side}_build") == "red":
            d = diags[0]
            head = f"{d.get('file')}:{d.get('line')}:{d.get('col')}: {d.get('message', '')}"
            out += [
                f"      {side}: " + ln if i == 0 else "        " + ln
                for i, ln in enumerate(head.strip().splitlines())
            ]
            break
    return out


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
    from bactrian.progress import progress

    if model and not base_url and model in named_models():  # a named model, e.g. smollm2
        mcfg = named_models()[model]
    else:
        mcfg = load_model_config(base_url=base_url, model=model)
    if describer == "llm" and not mcfg.configured:
        raise ConfigError("--backend llm needs a model: pass --base-url (and --model).")
    d = make_describer(describer or "", mcfg)
    with ExampleDB() as db:
        examples = db.all()
        counts = describe_examples(
            examples,
            d,
            only_missing=missing_only,
            progress=lambda xs: progress(xs, "describing", "example"),
        )
        db.update(examples)
    counts["describer"] = d.name
    if as_json:
        _echo_json(counts)
    else:
        click.echo(f"described {counts['described']} examples with {d.name}: {counts['by_source']}")
        if counts["rejected"]:
            click.echo(f"model prompts rejected (fell back): {counts['rejected']}")
