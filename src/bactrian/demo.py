"""``bactrian demo``: the whole loop on the bundled sample, with real components.

1. **replay** the scripted editing session into a copy of the sample OCaml workspace while the
   real snapshotter records the timeline (real dune builds, scaled clock);
2. **mine** the timeline into (context, prompt, diff) examples;
3. **describe** them with the offline model ``smollm2`` (two steps, filtered and leak-checked;
   a rejected reply keeps the deterministic prompt);
4. build a **dataset** with leakage-safe ``train`` / ``rl`` / ``heldout`` splits;
5. **warm** the Code Evaluation Service on every example's base tree;
6. **judge** every gold diff there (the mined data's validity);
7. **evaluate** ``smollm2`` on ``heldout`` through the CES (:mod:`bactrian.evaluate`);
8. the HTML **report**;
9. with ``DEMO_TRAIN=1``: a short SFT run and a before/after comparison
   (:func:`train_step`, from ``bactrian.train.demo``).

Each step shows a progress bar (on a terminal; ``BACTRIAN_PROGRESS=1`` forces them) and ends
with one line; a closing summary says what was found and where every artefact is. Everything
goes under ``--out`` (default ``./demo-out``), including its own bactrian data directory, so it
never touches your real store; only the converted ``smollm2`` checkpoint is kept in the usual
model cache, so it is converted once per machine.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from bactrian.rundir import isolated_data_dir, prepare_out, shared_threads

Echo = Callable[[str], None]
TRAIN_MODULE = "bactrian.train.demo"
DEFAULT_MAX_TOKENS = 160
# a small model on a CPU reads a few hundred tokens a second and writes a few: the describe
# step shows it the tail of each change (the diff) and lets it write a short description
DESCRIBE_TOKENS = 96
DESCRIBE_CHARS = 1500


@dataclass
class DemoReport:
    snapshots: int = 0
    states: dict[str, int] = field(default_factory=dict)
    examples: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    prompt_sources: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    judged: int = 0
    valid: int = 0
    eval_summary: dict[str, Any] = field(default_factory=dict)
    training: Any = None
    paths: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def dataset_dir(self) -> str:
        return self.paths.get("dataset", "")

    @property
    def validity_rate(self) -> float:
        return self.valid / self.judged if self.judged else 0.0


def run_demo(
    out: Path,
    *,
    speed: float = 60.0,
    echo: Echo = print,
    model: str = "smollm2",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    train: bool | None = None,
) -> DemoReport:
    """Run the whole demo into ``out`` (wiped first) and return what it measured.
    ``train``: run :func:`train_step` (default: ``DEMO_TRAIN=1`` in the environment)."""
    out = prepare_out(out, "demo")
    if train is None:
        train = os.environ.get("DEMO_TRAIN", "").strip() in ("1", "true", "yes")
    with isolated_data_dir(out / "data"):
        return _Demo(out, speed, echo, model, max_tokens, train).run()


class _Demo:
    def __init__(
        self, out: Path, speed: float, echo: Echo, model: str, max_tokens: int, train: bool
    ) -> None:
        self.out, self.speed, self.echo = out, speed, echo
        self.model, self.max_tokens, self.train = model, max_tokens, train
        self.report = DemoReport()
        self.steps = 9 if train else 8
        self.backend: Any = None

    def step(self, n: int, title: str) -> float:
        self.echo(f"\n== {n}/{self.steps} {title}")
        return time.monotonic()

    def done(self, key: str, t0: float, line: str) -> None:
        self.report.timings[key] = time.monotonic() - t0
        self.echo(f"   -> {line} ({self.report.timings[key]:.0f} s)")

    def run(self) -> DemoReport:
        from bactrian.ces.api import shutdown
        from bactrian.dataset.store import ExampleDB

        db = ExampleDB()
        self.report.paths["examples_db"] = str(db.path)
        try:
            workspace = self.replay()
            examples = self.mine(workspace, db)
            self.describe(examples, db)
            dataset = self.dataset(db)
            specs = self.warm(examples)
            self.judge(examples, specs)
            self.evaluate(dataset)
            self.html()
            if self.train:
                t0 = time.monotonic()
                self.report.training = train_step(dataset, self.out / "train", self.echo)
                self.report.timings["train"] = time.monotonic() - t0
        finally:
            db.close()
            shutdown()
            if self.backend is not None:
                self.backend.close()
        for line in closing_lines(self.report):
            self.echo(line)
        return self.report

    # ------------------------------------------------------------ 1. replay
    def replay(self) -> Path:
        from bactrian.progress import Bar
        from bactrian.sample import SESSION, replay
        from bactrian.snapshot import open_store

        workspace = self.out / "workspace"
        t0 = self.step(
            1, f"Replaying the sample session into {workspace} (real dune, clock x{self.speed:g})"
        )
        with Bar("snapshots", total=len(SESSION.steps), unit="snapshot") as bar:
            snaps = replay(workspace, speed=self.speed, progress=lambda _line: bar.step())
        store = open_store(workspace)
        try:
            timeline = store.timeline()
            self.report.paths["store"] = str(getattr(store, "root", ""))
        finally:
            store.close()
        titles = {i + 1: step.title for i, step in enumerate(SESSION.steps)}
        self.echo("   the timeline as the snapshot store holds it (`bactrian snapshot list`):")
        for snap in timeline:
            first = snap.build.diagnostics[0].headline() if snap.build.diagnostics else ""
            title = titles.get(snap.seq, "")
            title = title if len(title) <= 40 else title[:39] + "…"
            self.echo(f"   #{snap.seq:<3} {snap.build.state.value:<6} {title:<40}  {first}")
            state = snap.build.state.value
            self.report.states[state] = self.report.states.get(state, 0) + 1
        self.report.snapshots = len(snaps)
        states = ", ".join(f"{v} {k}" for k, v in sorted(self.report.states.items()))
        self.done("replay_s", t0, f"{len(snaps)} snapshots recorded ({states})")
        return workspace

    # ------------------------------------------------------------ 2. mine
    def mine(self, workspace: Path, db: Any) -> list[Any]:
        from bactrian.mine.mining import mine_workspaces

        t0 = self.step(2, "Mining the timeline into (context, prompt, diff) examples")
        result = mine_workspaces([workspace], db=db)
        examples = result.examples
        for e in examples:
            steps = e.stats.get("steps", "")
            self.echo(f"   {e.kind:<7} {str(steps):<9} {e.id}  {e.prompt.split(chr(10), 1)[0]}")
            self.report.kinds[e.kind] = self.report.kinds.get(e.kind, 0) + 1
        self.report.examples = len(examples)
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(self.report.kinds.items()))
        rep = result.report.to_dict()
        dropped = ", ".join(f"{k} {v}" for k, v in rep["dropped"].items()) or "nothing"
        self.done(
            "mine_s",
            t0,
            f"{len(examples)} examples ({kinds}) from {rep['candidates']} "
            f"candidates; dropped {dropped}",
        )
        return examples

    # ------------------------------------------------------------ 3. describe
    def describe(self, examples: list[Any], db: Any) -> None:
        from bactrian.mine.describe import LLMDescriber, describe_examples
        from bactrian.models import make_backend, resolve_model
        from bactrian.progress import progress

        t0 = self.step(3, f"Describing the examples with the offline model {self.model}")
        self.backend = make_backend(resolve_model(self.model, threads=shared_threads()))
        self.echo(f"   {self.model} loaded in {time.monotonic() - t0:.0f} s")
        counts = describe_examples(
            examples,
            LLMDescriber(self.backend, detail_tokens=DESCRIBE_TOKENS, context_chars=DESCRIBE_CHARS),
            progress=lambda xs: progress(xs, "describing", "example"),
        )
        db.update(examples)
        self.report.prompt_sources = dict(counts["by_source"])
        by = ", ".join(f"{k} {v}" for k, v in sorted(counts["by_source"].items()))
        rejected = sum(counts["rejected"].values()) if counts["rejected"] else 0
        self.done(
            "describe_s",
            t0,
            f"prompts by source: {by}; {rejected} model prompts rejected by "
            "the prompt filter and leak audit (they keep the deterministic prompt)",
        )

    # ------------------------------------------------------------ 4. dataset
    def dataset(self, db: Any) -> Path:
        from bactrian.dataset.splits import build_dataset, load_dataset_config

        out = self.out / "dataset"
        t0 = self.step(4, f"Building the dataset in {out} (leakage-safe splits)")
        manifest = build_dataset(out, db.all(), load_dataset_config(), mining_reports=db.reports())
        self.report.splits = dict(manifest["counts"]["by_split"])
        self.report.paths["dataset"] = str(out)
        splits = ", ".join(f"{k} {v}" for k, v in sorted(self.report.splits.items()))
        rule = manifest["split_rule"]
        self.done(
            "dataset_s",
            t0,
            f"{manifest['examples']} examples: {splits} (split by "
            f"{rule['method']}, grouped by {rule['grouping']})",
        )
        return out

    # ------------------------------------------------------------ 5. warm the CES
    def _ces(self) -> Any:
        from bactrian.ces.api import get_backend
        from bactrian.ces.config import CESConfig

        # gold diffs are human-written: their own test edits count ("trust"); each base is
        # judged once, so one worker per base is enough
        return get_backend("local", CESConfig.load(edits_tests_policy="trust", workers=1))

    def warm(self, examples: list[Any]) -> list[Any]:
        from bactrian.ces.contract import BaseSpec
        from bactrian.dataset.splits import materialize_base
        from bactrian.progress import progress

        bases = self.out / "ces-bases"
        t0 = self.step(5, f"Warming the Code Evaluation Service on {len(examples)} base trees")
        specs = []
        for ex in examples:
            # a fix's base is red by definition: bases need not be green, the verdict must be
            specs.append(
                BaseSpec(source=str(materialize_base(ex, bases / ex.id)), require_green=False)
            )
        be = self._ces()
        warmed = [be.warm(s, 1) for s in progress(specs, "warming", "tree")]
        secs = sum(float(w.get("warm_s", 0) or 0) for w in warmed)
        self.report.paths["ces_bases"] = str(bases)
        self.done(
            "warm_s",
            t0,
            f"{len(warmed)} warm trees (dune build and test binaries built; "
            f"{secs:.0f} s of builds)",
        )
        return specs

    # ------------------------------------------------------------ 6. judge the gold diffs
    def judge(self, examples: list[Any], specs: list[Any]) -> None:
        from bactrian.ces.contract import Job
        from bactrian.progress import progress

        t0 = self.step(
            6, "Judging every gold diff on its base (apply, parse, typecheck, build, test)"
        )
        be = self._ces()
        pairs = list(zip(examples, specs, strict=True))
        for ex, spec in progress(pairs, "judging", "diff"):
            (verdict,) = be.evaluate([Job(base=spec, diff=ex.diff, id=ex.id)])
            self.report.judged += 1
            self.report.valid += verdict.ok
            stages = " ".join(f"{s.name}:{s.status}" for s in verdict.stages)
            mark = "ok  " if verdict.ok else "FAIL"
            reward = "none" if verdict.reward is None else f"{verdict.reward:.2f}"
            self.echo(f"   {mark} {ex.kind:<7} {ex.id}  reward {reward}  {stages}")
        r = self.report
        self.done(
            "ces_s",
            t0,
            f"validity: {r.valid}/{r.judged} gold diffs turn their base green "
            f"({100 * r.validity_rate:.0f}%)",
        )

    # ------------------------------------------------------------ 7. evaluate
    def evaluate(self, dataset: Path) -> None:
        from bactrian.evaluate.run import run_eval, summary_lines

        run = self.out / "eval"
        t0 = self.step(7, f"Evaluating {self.model} on the heldout split (judged by the CES)")
        summary = run_eval(
            dataset,
            run,
            model=self.model,
            max_tokens=self.max_tokens,
            echo=lambda s: self.echo(f"   {s}"),
            backend=self.backend,
        )
        self.report.eval_summary = summary
        self.report.paths["eval_run"] = str(run)
        for line in summary_lines(summary):
            self.echo(f"   {line}")
        self.done(
            "eval_s",
            t0,
            f"{self.model}: pass@1 {100 * summary['pass@1']:.1f}% on "
            f"{summary['examples']} heldout examples",
        )

    # ------------------------------------------------------------ 8. report
    def html(self) -> None:
        t0 = self.step(8, "The HTML report")
        report = self.out / "eval" / "report.html"
        self.report.paths["report"] = str(report)
        size = report.stat().st_size if report.exists() else 0
        self.done("report_s", t0, f"{report} ({size // 1024} KiB, self-contained)")


# ---------------------------------------------------------------- 9. training (DEMO_TRAIN=1)


def train_step(dataset_dir: Path, out_dir: Path, echo: Echo, *, module: str = TRAIN_MODULE) -> Any:
    """The demo's training step (``DEMO_TRAIN=1``): a short SFT run on ``dataset_dir`` and a
    before/after evaluation, done by ``bactrian.train.demo.run_demo_training(dataset_dir,
    out_dir, progress)`` (``progress`` takes one line of text; what it returns is shown in
    the closing summary). When that module is not installed it says so and returns ``None``;
    the demo goes on."""
    echo("\n== 9/9 Training: a short SFT run on train, then a before/after eval compare")
    try:
        trainer = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise  # the module is there but something it imports is not: a real error
        echo(
            f"   -> training is not available in this build ({module} is missing); "
            "the rest of the demo ran without it."
        )
        return None
    t0 = time.monotonic()
    result = trainer.run_demo_training(dataset_dir, out_dir, lambda s: echo(f"   {s}"))
    echo(f"   -> training done ({time.monotonic() - t0:.0f} s); outputs in {out_dir}")
    return result


# ---------------------------------------------------------------- the closing summary


def closing_lines(r: DemoReport) -> list[str]:
    s = r.eval_summary
    states = ", ".join(f"{v} {k}" for k, v in sorted(r.states.items()))
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(r.kinds.items()))
    srcs = ", ".join(f"{k} {v}" for k, v in sorted(r.prompt_sources.items()))
    splits = ", ".join(f"{k} {v}" for k, v in sorted(r.splits.items()))
    total = sum(r.timings.values())
    lines = [
        "",
        f"== Summary ({total:.0f} s)",
        f"   found:    {r.snapshots} snapshots ({states}) -> {r.examples} examples ({kinds})",
        f"   prompts:  {srcs}",
        f"   dataset:  {splits}",
        f"   validity: {r.valid}/{r.judged} gold diffs pass the CES ({100 * r.validity_rate:.0f}%)",
    ]
    if s:
        lines.append(
            f"   model:    {s.get('model')} pass@1 {100 * s.get('pass@1', 0):.1f}% on "
            f"{s.get('examples', 0)} heldout examples"
        )
    if r.training is not None:
        lines.append(f"   training: {r.training}")
    lines.append("   where:")
    names = {
        "store": "snapshot store",
        "examples_db": "examples db",
        "dataset": "dataset",
        "ces_bases": "CES bases",
        "eval_run": "eval run",
        "report": "report",
    }
    for key, name in names.items():
        if r.paths.get(key):
            lines.append(f"     {name + ':':<15} {r.paths[key]}")
    return lines


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Directory for everything the demo writes (an earlier demo output there is wiped).",
)
@click.option("--speed", type=float, default=60.0, show_default=True, help="Replay clock factor.")
@click.option(
    "--model", default="smollm2", show_default=True, help="The model to describe and evaluate with."
)
@click.option(
    "--max-tokens",
    type=int,
    default=DEFAULT_MAX_TOKENS,
    show_default=True,
    help="Tokens the model may write per evaluation sample.",
)
def demo(out: Path, speed: float, model: str, max_tokens: int) -> None:
    """The whole loop on the bundled OCaml sample: replay a session under the real snapshotter,
    mine it, describe it with the offline model, build a dataset, warm the CES, judge the gold
    diffs, evaluate smollm2 on heldout and write the HTML report (DEMO_TRAIN=1: and train)."""
    run_demo(out, speed=speed, echo=click.echo, model=model, max_tokens=max_tokens)
