"""``bactrian demo``: the main job on the bundled sample, end to end.

1. Replay the scripted editing session into a copy of the sample OCaml workspace while the
   real snapshotter records the timeline (real dune builds, scaled clock).
2. Print the timeline: green/red per snapshot with the first diagnostic.
3. Mine the timeline into (context, prompt, diff) examples and build a dataset.
4. Judge every mined example's gold diff with the Code Evaluation Service against the
   example's own base tree, and print the validity rate.

Everything it writes goes under ``--out`` (default ``./demo-out``), including its own data
directory, so it never touches your real bactrian store.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from bactrian.errors import WorkspaceError

Echo = Callable[[str], None]
MARKER = ".bactrian-demo"


@dataclass
class DemoReport:
    snapshots: int = 0
    examples: int = 0
    judged: int = 0
    valid: int = 0
    dataset_dir: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def validity_rate(self) -> float:
        return self.valid / self.judged if self.judged else 0.0


def run_demo(out: Path, *, speed: float = 60.0, echo: Echo = print) -> DemoReport:
    """Run the whole demo into ``out`` (wiped first) and return what it measured."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise WorkspaceError(
                f"{out} exists and is not an earlier demo output; the demo wipes its output "
                "directory, so give it a new or empty one with --out."
            )
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(
            f"--out {out}: cannot create the demo's output directory ({exc.strerror or exc}); "
            "give a directory that can be created."
        ) from None
    (out / MARKER).write_text("written by `bactrian demo`; wiped by the next run\n")
    saved = os.environ.get("BACTRIAN_DATA_DIR")
    os.environ["BACTRIAN_DATA_DIR"] = str(out / "data")  # the demo's own store and CES dirs
    try:
        return _run(out, speed, echo)
    finally:
        if saved is None:
            os.environ.pop("BACTRIAN_DATA_DIR", None)
        else:
            os.environ["BACTRIAN_DATA_DIR"] = saved


def _run(out: Path, speed: float, echo: Echo) -> DemoReport:
    report = DemoReport()

    from bactrian.sample import SESSION, replay
    from bactrian.snapshot import open_store

    workspace = out / "workspace"
    echo(f"== 1. Replaying the sample session into {workspace} (real dune, clock x{speed:g})")
    t0 = time.monotonic()
    snaps = replay(workspace, speed=speed)
    report.timings["replay_s"] = time.monotonic() - t0
    report.snapshots = len(snaps)
    echo(f"   {len(snaps)} snapshots recorded in {report.timings['replay_s']:.0f} s")

    echo("\n== 2. The timeline as the snapshot store holds it (`bactrian snapshot list`)")
    store = open_store(workspace)
    try:
        timeline = store.timeline()
    finally:
        store.close()
    titles = {i + 1: step.title for i, step in enumerate(SESSION.steps)}
    for snap in timeline:
        first = snap.build.diagnostics[0].headline() if snap.build.diagnostics else ""
        title = titles.get(snap.seq, "")
        title = title if len(title) <= 40 else title[:39] + "…"
        echo(f"   #{snap.seq:<3} {snap.build.state.value:<6} {title:<40}  {first}")

    echo("\n== 3. Mining the timeline")
    t0 = time.monotonic()
    examples, stats = _mine_and_build(workspace, out / "dataset", echo)
    report.timings["mine_s"] = time.monotonic() - t0
    report.examples = len(examples)
    report.dataset_dir = str(out / "dataset")

    echo("\n== 4. Judging the gold diffs with the Code Evaluation Service")
    t0 = time.monotonic()
    report.judged, report.valid = _judge_gold(examples, out / "ces-bases", echo)
    report.timings["ces_s"] = time.monotonic() - t0
    echo(
        f"\n   validity: {report.valid}/{report.judged} gold diffs turn their base green "
        f"({100 * report.validity_rate:.0f}%)"
    )
    return report


def _mine_and_build(workspace: Path, dataset_dir: Path, echo: Echo) -> tuple[list[Any], Any]:
    from bactrian.mine.mining import mine_to_dataset, summary_lines

    examples, stats = mine_to_dataset([workspace], dataset_dir)
    for line in summary_lines(examples, stats):
        echo(f"   {line}")
    return examples, stats


def _judge_gold(examples: list[Any], bases_dir: Path, echo: Echo) -> tuple[int, int]:
    """Materialise each example's base tree and judge its gold diff there. A fix's base is red
    by definition, so bases are not required to be green; the verdict must be."""
    from bactrian.ces.api import get_backend, shutdown
    from bactrian.ces.config import CESConfig
    from bactrian.ces.contract import BaseSpec, Job
    from bactrian.dataset.splits import materialize_base

    jobs = []
    for ex in examples:
        base_dir = materialize_base(ex, bases_dir / ex.id)
        spec = BaseSpec(source=str(base_dir), require_green=False)
        jobs.append(Job(base=spec, diff=ex.diff, id=ex.id))
    # gold diffs are human-written: their own test edits count ("trust"); each base is
    # judged once, so one worker per base is enough
    config = CESConfig.load(edits_tests_policy="trust", workers=1)
    backend = get_backend("local", config)
    try:
        verdicts = backend.evaluate(jobs)
    finally:
        shutdown()
    valid = 0
    for ex, verdict in zip(examples, verdicts, strict=True):
        valid += verdict.ok
        stages = " ".join(f"{s.name}:{s.status}" for s in verdict.stages)
        mark = "ok  " if verdict.ok else "FAIL"
        reward = "none" if verdict.reward is None else f"{verdict.reward:.2f}"
        echo(f"   {mark} {ex.kind:<7} {ex.id}  reward {reward}  {stages}")
    return len(verdicts), valid


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Directory for everything the demo writes (an earlier demo output there is wiped).",
)
@click.option("--speed", type=float, default=60.0, show_default=True, help="Replay clock factor.")
def demo(out: Path, speed: float) -> None:
    """Replay the bundled OCaml session with the real snapshotter, print the timeline, mine
    it into a dataset and judge the gold diffs with the CES."""
    start = time.monotonic()
    report = run_demo(out, speed=speed, echo=click.echo)
    click.echo(
        f"\nDone in {time.monotonic() - start:.0f} s: {report.snapshots} snapshots, "
        f"{report.examples} examples, dataset in {report.dataset_dir}"
    )
