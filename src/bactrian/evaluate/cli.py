"""``bactrian eval run|report|compare`` — thin adapters over :mod:`bactrian.evaluate.run`."""

from __future__ import annotations

import json
from pathlib import Path

import click

DIR = click.Path(file_okay=False, path_type=Path)


@click.group("eval")
def group() -> None:
    """Evaluate a model on held-out examples, judged by the CES."""


@group.command("run")
@click.option(
    "--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
@click.option("--split", help="Split to evaluate (default: heldout).")
@click.option("--model", default="smollm2", show_default=True, help="A named model.")
@click.option("--strategy", help="Prompt strategy (default: the model's).")
@click.option("--samples", type=int, help="Samples per example (k of pass@k).")
@click.option("--temperature", type=float, help="Default: 0 for one sample, 0.8 for several.")
@click.option("--max-tokens", type=int, help="Tokens per sample (default: the model's).")
@click.option("--limit", type=int, help="Evaluate the first N examples only.")
@click.option("--out", type=DIR, required=True, help="Run directory (rerun to resume).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run_cmd(
    dataset: Path,
    split: str | None,
    model: str,
    strategy: str | None,
    samples: int | None,
    temperature: float | None,
    max_tokens: int | None,
    limit: int | None,
    out: Path,
    as_json: bool,
) -> None:
    """Gold check, then sample the model on each example and judge every sample with the CES;
    writes results.jsonl, summary.json and report.html into --out."""
    from bactrian.ces.api import shutdown
    from bactrian.evaluate.run import REPORT, run_eval, summary_lines

    try:
        summary = run_eval(
            dataset,
            out,
            model=model,
            strategy=strategy,
            split=split,
            samples=samples,
            temperature=temperature,
            max_tokens=max_tokens,
            limit=limit,
            echo=lambda s: click.echo(s, err=True),
        )
    finally:
        shutdown()
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    for line in summary_lines(summary):
        click.echo(line)
    click.echo(f"report: {out / REPORT}")


@group.command("report")
@click.argument("run", type=DIR)
@click.option("--compare", "other", type=DIR, help="Include a paired comparison with this run.")
def report_cmd(run: Path, other: Path | None) -> None:
    """Recompute summary.json and report.html of RUN (optionally compared with another run)."""
    from bactrian.evaluate.run import REPORT, summary_lines, write_summary

    summary = write_summary(run, compare_with=other)
    for line in summary_lines(summary):
        click.echo(line)
    click.echo(f"report: {run / REPORT}")


@group.command("compare")
@click.argument("run_a", type=DIR)
@click.argument("run_b", type=DIR)
@click.option("--json", "as_json", is_flag=True)
def compare_cmd(run_a: Path, run_b: Path, as_json: bool) -> None:
    """Paired comparison of RUN_B against RUN_A on the same examples: per-example pass rates,
    the difference with a bootstrap 95% interval, and the exact McNemar test."""
    from bactrian.evaluate.run import compare_runs

    c = compare_runs(run_a, run_b)
    if as_json:
        click.echo(json.dumps(c, indent=2, sort_keys=True))
        return
    for ex, v in sorted(c["per_example"].items()):
        click.echo(f"{ex}  A {100 * v['a']:5.1f}%  B {100 * v['b']:5.1f}%")
    click.echo(
        f"{c['examples']} examples: A {100 * c['pass_rate_a']:.1f}% B {100 * c['pass_rate_b']:.1f}%"
        f", difference {100 * c['difference']:+.1f} points (95% CI {100 * c['ci95'][0]:+.1f} .. "
        f"{100 * c['ci95'][1]:+.1f}), McNemar exact p = {c['mcnemar_p']:.3g} "
        f"(A-only {c['a_only']}, B-only {c['b_only']})"
    )
