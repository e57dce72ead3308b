"""``bactrian quickstart PATH``: the whole loop on your own dune repository (git or
Mercurial), on day one, before a single snapshot has been collected.

1. **inspect**: the repository, the range to mine (default: the last
   :data:`DEFAULT_COMMITS` commits), its head, submodules, a dune project at the head;
2. **doctor**: a build scope that is green at the head (:func:`bactrian.doctor.diagnose`):
   what it leaves out and why;
3. **mine** the range with real labels through warm CES trees (one per base; every part of a
   split commit built);
4. **dataset** with leakage-safe splits and its data-quality figures (prompt sources, empty
   contexts, validity: :mod:`bactrian.mine.quality`);
5. **warm** the CES on the head under that scope (build, test binaries, tests);
6. **evaluate** ``smollm2`` (or ``--model``) on ``heldout``: the gold diffs are judged first
   (validity with the tests), then the model's samples; the HTML report.

Nothing is written inside the repository and its VCS state is never touched: every tree is an
archive of a revision outside it (``git archive`` / ``hg archive``, read-only VCS commands).
Everything goes under ``--out`` (its own bactrian data directory included). What cannot be
used — commits that do not build, libraries that are not installed, huge commits, merges,
submodules, no dune project — is reported with the reason; a step that cannot run stops the
run with a report that says why (``QuickstartReport.stopped``), never a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from bactrian import vcs
from bactrian.ces.api import get_backend, shutdown
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec
from bactrian.dataset.splits import build_dataset, load_dataset_config
from bactrian.dataset.store import ExampleDB
from bactrian.doctor import diagnose, tree_files, union_scope
from bactrian.dune import BuildScope, lists_dune_project
from bactrian.errors import BactrianError, BaseNotGreenError, WorkspaceError
from bactrian.evaluate.run import run_eval, summary_lines
from bactrian.mine.config import load_mine_config
from bactrian.mine.label import Labeller
from bactrian.mine.mining import mine_vcs
from bactrian.mine.quality import figure_lines, figures
from bactrian.mine.vcs import open_vcs
from bactrian.models import make_backend, resolve_model
from bactrian.rundir import isolated_data_dir, prepare_out, shared_threads

Echo = Callable[[str], None]
DEFAULT_COMMITS = 20
DEFAULT_MAX_TOKENS = 256
SUMMARY_JSON = "quickstart.json"
SUMMARY_TXT = "quickstart.txt"
NULL_HG = "0" * 40

# why mining left something out, in words (keys: the miner's filter and skip names)
WHY = {
    "merge": "merge commits: their changes are mined from the commits they merge",
    "empty": "nothing left to learn from once non-code files are set aside",
    "docs_only": "only documentation changed",
    "max_changed_lines": "too many changed lines (huge commits), and no split into parts fit",
    "max_files": "too many files changed",
    "generated_binary_vendored": "generated, binary or vendored files",
    "whitespace_only": "whitespace-only changes",
    "comment_only": "comment-only changes",
    "exact_duplicate": "exact duplicates of an earlier example",
    "near_duplicate": "near duplicates of an earlier example",
    "secret": "a secret in the diff or context (a key, a token, a file such as .env)",
    "split_first_part_over_limit": "a large commit whose first part alone is over the limits",
    "split_part_red": "a large commit whose parts do not build on their own",
    "already_mined": "already mined",
}


@dataclass
class QuickstartReport:
    repo: str = ""
    kind: str = ""
    range: str = ""
    head: str = ""
    commits: int = 0
    scope: str = ""
    excluded: list[str] = field(default_factory=list)  # what the scope leaves out, and why
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {what, count, why}
    notes: list[str] = field(default_factory=list)
    mined: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    warm: dict[str, Any] = field(default_factory=dict)
    eval_summary: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    stopped: str | None = None  # why the run could not go on (None: it ran to the end)
    lines: list[str] = field(default_factory=list)

    def skip(self, what: str, count: int, why: str) -> None:
        self.skipped.append({"what": what, "count": count, "why": why})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("lines")
        return d


class _Stop(Exception):
    """A step that cannot go on: its message is the report's ``stopped``."""


def run_quickstart(
    repo: Path | str,
    out: Path | str,
    *,
    rev_range: str | None = None,
    model: str = "smollm2",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    limit: int | None = None,
    timeout_s: float = 900.0,
    echo: Echo = print,
) -> QuickstartReport:
    """Run the quickstart on ``repo`` into ``out`` (wiped first when an earlier quickstart
    wrote it; never inside ``repo``). Returns the report; ``report.stopped`` says why it
    stopped early, if it did. ``limit``: evaluate at most this many heldout examples."""
    repo_path = Path(repo).expanduser()
    if not repo_path.exists():
        raise WorkspaceError(
            f"{repo} does not exist; pass the path of a git or Mercurial repository."
        )
    out_dir = prepare_out(Path(out), "quickstart", refuse_inside=repo_path)
    qs = _Quickstart(
        repo_path.resolve(), out_dir, rev_range, model, max_tokens, limit, timeout_s, echo
    )
    with isolated_data_dir(out_dir / "data"):
        try:
            qs.run()
        except _Stop as stop:
            qs.report.stopped = str(stop)
        finally:
            shutdown()
    qs.finish()
    return qs.report


class _Quickstart:
    def __init__(
        self,
        repo: Path,
        out: Path,
        rev_range: str | None,
        model: str,
        max_tokens: int,
        limit: int | None,
        timeout_s: float,
        echo: Echo,
    ) -> None:
        self.repo, self.out, self.rev_range = repo, out, rev_range
        self.model, self.max_tokens, self.limit, self.timeout_s = (
            model,
            max_tokens,
            limit,
            timeout_s,
        )
        self.echo = echo
        self.report = QuickstartReport(repo=str(repo))
        self.scope = BuildScope()
        self.old_base: str | None = None  # the oldest base the range builds on

    # ------------------------------------------------------------ plumbing
    def say(self, line: str) -> None:
        self.report.lines.append(line)
        self.echo(line)

    def step(self, n: int, title: str) -> float:
        self.say(f"\n== {n}/6 {title}")
        return time.monotonic()

    def done(self, key: str, t0: float, line: str) -> None:
        self.report.timings[key] = time.monotonic() - t0
        self.say(f"   -> {line} ({self.report.timings[key]:.0f} s)")

    def guard(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn()``; a bactrian error (or an OS error) stops the run with what and why."""
        try:
            return fn()
        except _Stop:
            raise
        except BactrianError as exc:
            raise _Stop(f"{what}: {exc}") from None
        except OSError as exc:
            raise _Stop(f"{what}: {exc.strerror or exc} ({getattr(exc, 'filename', '')})") from None

    def run(self) -> None:
        files = self.inspect()
        self.doctor(files)
        examples = self.mine()
        dataset = self.dataset(examples)
        self.warm(files)
        self.evaluate(dataset)

    # ------------------------------------------------------------ 1. inspect
    def inspect(self) -> list[str]:
        r = self.report
        t0 = self.step(1, f"Inspecting {self.repo}")
        reader = self.guard("reading the repository", lambda: open_vcs(self.repo))
        try:
            r.kind = reader.kind
            r.range = self.rev_range or self.guard(
                "choosing the range", lambda: default_range(self.repo, reader.kind)
            )
            commits = self.guard(
                f"listing the commits of {r.range}", lambda: reader.commits(r.range)
            )
            if not commits:
                raise _Stop(
                    f"the range {r.range!r} holds no commits; pass --range A..B (git) or a revset (hg)."
                )
            r.commits = len(commits)
            r.head = commits[-1].rev
            ordered = sorted((c for c in commits if not c.merge), key=lambda c: c.time)
            self.old_base = next((c.parent for c in ordered if c.parent), None)
            files = self.guard("listing the head's files", lambda: reader.files(r.head))
        finally:
            reader.close()
        merges = sum(c.merge for c in commits)
        subs = [f for f in files if f in (".gitmodules", ".hgsub")]
        if subs:
            r.notes.append(
                f"submodules ({', '.join(subs)}): their contents are not part of the revision's "
                "archive, so their directories are empty in every tree bactrian builds"
            )
            r.skip("submodule contents", len(subs), "not in the repository's own history")
        self.done(
            "inspect_s",
            t0,
            f"{r.kind} repository; range {r.range}: {r.commits} commits ({merges} merges); "
            f"head {r.head[:12]}" + ("; has submodules" if subs else ""),
        )
        if not lists_dune_project(files):
            raise _Stop(
                f"no dune-project at the root of {r.head[:12]}: quickstart knows dune builds "
                "only (for another build, mine with `bactrian mine --from-vcs REPO --range R "
                "--label --build-cmd CMD`)."
            )
        return files

    # ------------------------------------------------------------ 2. doctor
    def doctor(self, files: list[str]) -> None:
        r = self.report
        t0 = self.step(2, f"Finding a build scope that is green at the head {r.head[:12]} (doctor)")
        d = self.guard(
            "building the head",
            lambda: diagnose(self.repo, rev=r.head, save=False, timeout_s=self.timeout_s),
        )
        for t in d.tried:
            self.say(f"   tried {t['suggestion']}: {t['state']}")
        if d.state == "green" or (d.state == "red" and d.scope is not None):
            self.scope = d.scope or BuildScope()
            r.excluded = [c.headline() for c in d.causes]
            head_line = (
                "the whole project builds green at the head"
                if d.state == "green"
                else f"head is red as a whole; green with {self.scope.describe()}"
            )
            self.old_end()
            r.scope = self.scope.describe()
            for c in r.excluded:
                self.say(f"   left out: {c}")
            self.done("doctor_s", t0, f"{head_line}; scope for the range: {r.scope}")
            return
        last = (d.log_tail.strip().splitlines() or ["(no output)"])[-1]
        causes = "; ".join(c.headline() for c in d.causes) or last
        if d.state == "red":
            raise _Stop(
                f"the head {r.head[:12]} does not build, even with the broken parts left out "
                f"({causes}). Fix the build at the head, or pass a --range that ends at a "
                "revision that builds."
            )
        raise _Stop(f"the head's build did not finish ({d.state}): {last}")

    def old_end(self) -> None:
        """The range's oldest base too: what it needs left out joins the scope (history often
        had a bench/ or fuzz/ the head no longer has), as ``bactrian doctor --rev A --rev B``."""
        r = self.report
        if not self.old_base or self.old_base == r.head:
            return
        try:
            d = diagnose(self.repo, rev=self.old_base, save=False, timeout_s=self.timeout_s)
        except BactrianError as exc:
            r.notes.append(f"the range's oldest base {self.old_base[:12]} was not checked: {exc}")
            return
        at = f"the oldest base {self.old_base[:12]}"
        if d.state == "green":
            self.say(f"   {at} builds green under the head's scope")
            return
        if d.state == "red" and d.scope is not None:
            wider = union_scope([self.scope, d.scope])
            if wider is not None and wider != self.scope:
                self.scope = wider
            for c in d.causes:
                if c.headline() not in r.excluded:
                    r.excluded.append(f"{c.headline()} (at {self.old_base[:12]})")
            self.say(f"   {at} is green with {d.scope.describe()}")
            return
        causes = "; ".join(c.headline() for c in d.causes) or d.state
        note = (
            f"{at} does not build even with parts left out ({causes[:400]}): examples on "
            "bases like it are labelled red"
        )
        r.notes.append(note)
        self.say(f"   {note}")

    # ------------------------------------------------------------ 3. mine
    def mine(self) -> list[Any]:
        r = self.report
        t0 = self.step(3, f"Mining {r.range} with real labels through warm CES trees")
        cfg = load_mine_config()
        labeller = Labeller(
            scope=self.scope,
            config=CESConfig.load(
                workers=1, edits_tests_policy="trust", work_dir=self.out / "ces" / "label"
            ),
            timeout_s=self.timeout_s,
        )
        db = ExampleDB()
        r.paths["examples_db"] = str(db.path)
        try:
            result = self.guard(
                "mining",
                lambda: mine_vcs(
                    self.repo,
                    r.range,
                    cfg,
                    kind=r.kind,
                    db=db,
                    label=labeller.label_examples,
                    checker=labeller,
                ),
            )
        finally:
            db.close()
        rep = result.report.to_dict()
        r.mined = {
            "candidates": rep["candidates"],
            "kept": rep["kept"],
            "dropped": rep["dropped"],
            "labels": {k: v for k, v in result.labels.items() if isinstance(v, int)},
            "notes": dict(result.notes),
            "warm_trees": labeller.warm_trees,
            "jobs": labeller.jobs,
            "red_bases": labeller.red_bases,
        }
        limits = {"max_changed_lines": cfg.max_changed_lines, "max_files": cfg.max_files}
        for key, n in rep["dropped"].items():
            why = WHY.get(key, key.replace("_", " "))
            if key in limits:
                why += f" (over {limits[key]})"
            r.skip(key, n, why)
            self.say(f"   skipped {n}: {why}")
        for red in labeller.red_bases:
            self.say(f"   does not build at {red['base']}: {red['hint']}")
            r.skip(f"build at {red['base']}", 1, red["hint"])
        unknown = [e for e in result.examples if e.stats.get("target_build") == "unknown"]
        whys: dict[str, int] = {}
        for e in unknown:
            w = str(e.stats.get("target_first_error") or "unknown")[:160]
            whys[w] = whys.get(w, 0) + 1
        for w, n in sorted(whys.items()):
            self.say(f"   not labelled ({n}): {w}")
            r.skip("labels", n, w)
        r.quality = figures(result.examples, commits=r.commits)
        for line in figure_lines(r.quality):
            self.say(f"   {line}")
        kinds = ", ".join(f"{v} {k}" for k, v in r.quality["kinds"].items()) or "none"
        self.done(
            "mine_s",
            t0,
            f"{rep['kept']} examples ({kinds}) from {r.commits} commits, "
            f"{labeller.warm_trees} warm trees, {labeller.jobs} build jobs",
        )
        if not result.examples:
            raise _Stop(
                f"no examples in {r.range} (what was skipped and why is listed above); pass a "
                "wider --range."
            )
        return list(result.examples)

    # ------------------------------------------------------------ 4. dataset
    def dataset(self, examples: list[Any]) -> Path:
        r = self.report
        out = self.out / "dataset"
        t0 = self.step(4, f"Building the dataset in {out} (leakage-safe splits)")
        manifest = self.guard(
            "building the dataset", lambda: build_dataset(out, examples, load_dataset_config())
        )
        r.splits = dict(manifest["counts"]["by_split"])
        r.paths["dataset"] = str(out)
        splits = ", ".join(f"{k} {v}" for k, v in sorted(r.splits.items()))
        self.done("dataset_s", t0, f"{manifest['examples']} examples: {splits}")
        return out

    # ------------------------------------------------------------ 5. warm the CES on the head
    def stages(self, files: list[str]) -> dict[str, str]:
        """CES stage commands for a tree with ``files`` under the scope (dune targets follow
        the tree's directories); the dune adapter's own when the whole project builds."""
        if self.scope.empty:
            return {}
        return {
            "typecheck": self.scope.command("check", files),
            "build": self.scope.command("default", files),
            "test": self.scope.command("runtest", files),
        }

    def warm(self, files: list[str]) -> None:
        r = self.report
        t0 = self.step(5, f"Warming the CES on the head {r.head[:12]} (build, tests)")
        spec = BaseSpec(source=str(self.repo), rev=r.head, vcs=r.kind, stages=self.stages(files))
        be = get_backend("local", CESConfig.load(workers=1, work_dir=self.out / "ces" / "head"))
        try:
            info = be.warm(spec, 1)
            r.warm = {"state": "green", "warm_s": info.get("warm_s")}
            line = "one warm tree, green with its tests"
        except BaseNotGreenError as exc:
            tail = [x for x in str(exc).splitlines() if x.strip()]
            r.warm = {"state": "red", "why": tail[0][:300] if tail else ""}
            r.notes.append(f"the head's tests do not pass under the scope: {r.warm['why']}")
            line = f"the head is not green with its tests: {r.warm['why']}"
        except BactrianError as exc:
            r.warm = {"state": "unknown", "why": str(exc)[:300]}
            line = f"could not warm the head: {r.warm['why']}"
        r.paths["ces"] = str(self.out / "ces")
        self.done("warm_s", t0, line)

    # ------------------------------------------------------------ 6. evaluate
    def evaluate(self, dataset: Path) -> None:
        r = self.report
        run = self.out / "eval"
        t0 = self.step(6, f"Judging the heldout gold diffs, then evaluating {self.model}")
        if not r.splits.get("heldout"):
            raise _Stop(
                "the dataset has no heldout examples to evaluate on (too few commits); pass a "
                "wider --range."
            )

        def stages_for(tree: Path) -> dict[str, str]:
            return self.stages(tree_files(tree))

        backend = None
        if self.model != "gold":  # `gold` answers with the gold diffs: nothing to load
            backend = self.guard(
                f"loading {self.model}",
                lambda: make_backend(resolve_model(self.model, threads=shared_threads())),
            )
        try:
            summary = self.guard(
                f"evaluating {self.model}",
                lambda: run_eval(
                    dataset,
                    run,
                    model=self.model,
                    max_tokens=self.max_tokens,
                    limit=self.limit,
                    echo=lambda s: self.say(f"   {s}"),
                    backend=backend,
                    stages_for=stages_for,
                ),
            )
        finally:
            if backend is not None:
                backend.close()
        r.eval_summary = summary
        r.paths["eval_run"] = str(run)
        r.paths["report"] = str(run / "report.html")
        for line in summary_lines(summary):
            self.say(f"   {line}")
        self.done(
            "eval_s",
            t0,
            f"{self.model}: pass@1 {100 * summary['pass@1']:.1f}% on {summary['examples']} "
            "heldout examples",
        )

    # ------------------------------------------------------------ the closing report
    def finish(self) -> None:
        r = self.report
        for line in closing_lines(r):
            self.say(line)
        r.paths["summary"] = str(self.out / SUMMARY_TXT)
        (self.out / SUMMARY_JSON).write_text(
            json.dumps(r.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
        )
        (self.out / SUMMARY_TXT).write_text("\n".join(r.lines) + "\n")


def default_range(repo: Path, kind: str, n: int = DEFAULT_COMMITS) -> str:
    """The last ``n`` commits of ``repo``'s head: ``HEAD~n..HEAD`` (or ``HEAD`` when the
    history is shorter) for git; ``last(::REV, n)`` for Mercurial (REV: the working copy's
    parent, else ``tip``)."""
    if kind == "git":
        raw = vcs.run_vcs(
            ["git", "-C", str(repo), "rev-list", "--count", "HEAD"], error=WorkspaceError
        )
        count = int(raw.decode().strip() or 0)
        return f"HEAD~{n}..HEAD" if count > n else "HEAD"
    raw = vcs.run_vcs(
        ["hg", "-R", str(repo), "log", "-r", ".", "-T", "{node}"], error=WorkspaceError
    )
    node = raw.decode().strip()
    rev = node if node and node != NULL_HG else "tip"
    return f"last(::{rev}, {n})"


def closing_lines(r: QuickstartReport) -> list[str]:
    q, s = r.quality, r.eval_summary
    total = sum(r.timings.values())
    lines = ["", f"== Summary of {r.repo} ({total:.0f} s)"]
    if r.kind:
        lines.append(f"   history:  {r.kind}, {r.range}: {r.commits} commits, head {r.head[:12]}")
    if r.scope:
        lines.append(
            f"   scope:    {r.scope}"
            + (f" (left out: {'; '.join(r.excluded)})" if r.excluded else "")
        )
    if q:
        kinds = ", ".join(f"{v} {k}" for k, v in q["kinds"].items()) or "none"
        lines.append(
            f"   examples: {q['examples']} ({kinds}); splits "
            + (", ".join(f"{k} {v}" for k, v in sorted(r.splits.items())) or "none")
        )
        lines += [f"   {x}" for x in figure_lines(q)]
    if s:
        g = s.get("gold", {})
        lines.append(
            f"   heldout:  gold diffs pass the CES (tests too) {g.get('valid', 0)}/{g.get('judged', 0)}; "
            f"{s.get('model')} pass@1 {100 * s.get('pass@1', 0):.1f}%"
        )
    for sk in r.skipped:
        lines.append(f"   skipped:  {sk['what']} ({sk['count']}): {sk['why']}")
    for note in r.notes:
        lines.append(f"   note:     {note}")
    if r.stopped:
        lines.append(f"   STOPPED:  {r.stopped}")
    lines.append("   where:")
    names = {
        "examples_db": "examples db",
        "dataset": "dataset",
        "ces": "CES trees",
        "eval_run": "eval run",
        "report": "report",
    }
    for key, name in names.items():
        if r.paths.get(key):
            lines.append(f"     {name + ':':<13} {r.paths[key]}")
    return lines


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--range",
    "rev_range",
    help=f"git range A..B or Mercurial revset to mine (default: the last {DEFAULT_COMMITS} commits).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("quickstart-out"),
    show_default=True,
    help="Directory for everything it writes (an earlier quickstart output there is wiped).",
)
@click.option(
    "--model",
    default="smollm2",
    show_default=True,
    help="The model to evaluate (`bactrian models list`).",
)
@click.option(
    "--max-tokens",
    type=int,
    default=DEFAULT_MAX_TOKENS,
    show_default=True,
    help="Tokens per sample.",
)
@click.option("--limit", type=int, help="Evaluate at most this many heldout examples.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=900.0,
    show_default=True,
    help="Seconds per build.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON at the end.")
def quickstart(
    path: Path,
    rev_range: str | None,
    out: Path,
    model: str,
    max_tokens: int,
    limit: int | None,
    timeout_s: float,
    as_json: bool,
) -> None:
    """The whole loop on your own dune repository PATH (git or Mercurial): find a build scope
    green at the head, mine the history with real labels, build a dataset and print its
    data quality, warm the CES, judge the gold diffs, evaluate a model, write the report.
    Never writes inside PATH or touches its VCS state."""
    echo = (lambda s: None) if as_json else click.echo
    report = run_quickstart(
        path,
        out,
        rev_range=rev_range,
        model=model,
        max_tokens=max_tokens,
        limit=limit,
        timeout_s=timeout_s,
        echo=echo,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str))
    if report.stopped:
        raise click.exceptions.Exit(1)
