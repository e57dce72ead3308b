"""``bactrian eval run``: held-out examples → model samples → CES verdicts → metrics.

1. Every example's base tree is materialised (``out/bases/<id>``) and its **gold** diff is
   judged there first; an example whose gold is not green is reported and excluded (the
   mined-data validity rate heads the report).
2. For each remaining example the model writes ``samples`` completions of the prompt the
   strategy lays out (one batched call); the strategy parses each back into a diff, and the
   CES judges it against the example's base with the CES's policy for model output (never
   ``trust``). Judging example *i* overlaps generating example *i+1*.
3. Everything is appended to ``results.jsonl`` as it happens, keyed by (model, strategy,
   example, sample, diff hash): an interrupted run continues where it stopped, and a
   generation or a verdict already made is never made again. A CES infrastructure error is
   retried, then recorded as such — never as the model's failure.
4. ``summary.json`` and the self-contained ``report.html`` are written at the end.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bactrian.ces.api import get_backend
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, Job
from bactrian.config import load_section
from bactrian.dataset.splits import load_dataset, materialize_base
from bactrian.errors import BactrianError, BaseNotGreenError, ConfigError
from bactrian.evaluate.metrics import compare, summarize
from bactrian.evaluate.report import render_report
from bactrian.models import Completion, ModelConfig, make_backend, resolve_model
from bactrian.strategies import RenderedPrompt, Strategy, get_strategy

Echo = Callable[[str], None]
RESULTS = "results.jsonl"
GOLD = "gold.jsonl"
SUMMARY = "summary.json"
REPORT = "report.html"
META = "run.json"
PROMPTS = "prompts.jsonl"


class EvalError(BactrianError):
    """An evaluation that cannot run (bad dataset, empty split, mismatched runs)."""


@dataclass
class EvalConfig:
    """Section ``[eval]``."""

    split: str = "heldout"
    samples: int = 1
    temperature: float | None = None  # None: 0 for one sample, 0.8 for several
    max_tokens: int | None = None  # None: the model's
    ces_retries: int = 2  # a CES infrastructure error is retried this often, then recorded
    ces_workers: int = 1  # warm trees per base
    stages: dict[str, str] = field(default_factory=dict)  # CES stage command overrides
    seed: int = 0
    # how the CES treats a sample's edits to test files: "both" (the CES's default for model
    # output: the sample's own tests and the base's tests unmodified, both against its code),
    # "pristine" (the base's tests run
    # unmodified) or "fail"; never "trust"
    model_policy: str = "both"


def load_eval_config(**overrides: Any) -> EvalConfig:
    return load_section(EvalConfig, "eval", overrides=overrides)


class GoldBackend:
    """The model ``gold``: answers each example's prompt with its gold diff in the strategy's
    edit format (the ceiling of a run, and the eval-overhead benchmark's "model")."""

    name = "gold"

    def __init__(self, examples: list[Any], strategy: Strategy) -> None:
        self._answers = {
            strategy.render_input(e).messages[-1]["content"]: strategy.target(e) for e in examples
        }
        self._strategy = strategy

    def count_tokens(self, text: str) -> int:
        return (len(text) + 3) // 4

    def generate(
        self, messages: Any, sampling: Any = None, *, n: int = 1, cancel: Any = None
    ) -> list[Any]:

        text = self._answers.get(messages[-1]["content"], "")
        usage = {
            "prompt_tokens": self.count_tokens(messages[-1]["content"]),
            "completion_tokens": self.count_tokens(text),
        }
        return [Completion(text=text, usage=dict(usage), model="gold") for _ in range(n)]

    def close(self) -> None:
        pass


def _gold_model() -> Any:

    return ModelConfig(name="gold", backend="gold", max_prompt_tokens=10**9)


def eval_prompt(
    ex: Any,
    strategy: Strategy,
    *,
    count: Callable[[str], int] | None = None,
    budget: int | None = None,
) -> RenderedPrompt:
    """The prompt evaluation sends for example ``ex`` (the dataset export's, under a budget)."""
    return strategy.render_input(ex, count=count, budget=budget)


def diff_hash(diff: str) -> str:
    return hashlib.sha256(diff.encode()).hexdigest()[:16]


_ERROR_CLASSES = (
    ("syntax", re.compile(r"syntax error", re.I)),
    ("unbound", re.compile(r"\bunbound\b", re.I)),
    ("interface-mismatch", re.compile(r"does not match|not included in|interface", re.I)),
    ("type-mismatch", re.compile(r"has type|type .* is not compatible|expected of type", re.I)),
    ("warning-as-error", re.compile(r"\bwarning\b", re.I)),
)


def error_class(ex: Any) -> str | None:
    """For a fix: the class of the error it fixes (from its first diagnostic); else None."""
    if ex.kind != "fix":
        return None
    diags = ex.diagnostics
    if not diags:
        return "test-failure"
    msg = str(diags[0].get("message", ""))
    for name, pat in _ERROR_CLASSES:
        if pat.search(msg):
            return name
    return "other"


class _Progress:
    def __init__(self, total: int, stream: Any = None) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.start = time.monotonic()
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._lock = threading.Lock()

    def step(self, n: int = 1, what: str = "") -> None:
        with self._lock:
            self.done += n
            elapsed = time.monotonic() - self.start
            rate = self.done / elapsed if elapsed > 0 else 0
            eta = (self.total - self.done) / rate if rate else 0
            width = 24
            filled = int(width * self.done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            line = (
                f"[{bar}] {self.done}/{self.total} samples judged, "
                f"{elapsed:.0f} s, eta {eta:.0f} s {what}"
            )
            self.stream.write(("\r" + line) if self.tty else line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut by an interrupted run: its sample is redone
            continue
    return rows


class _Appender:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path.exists() and path.stat().st_size:
            with path.open("rb") as fh:
                fh.seek(-1, 2)
                cut = fh.read(1) != b"\n"
            if cut:  # an interrupted run left half a line: end it, so new rows stay whole
                with path.open("a") as fh:
                    fh.write("\n")

    def write(self, row: dict[str, Any]) -> None:
        with self._lock, self.path.open("a") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
            fh.flush()


def _ces_config(policy: str, *, gold: bool = False) -> Any:
    """The CES config for model output (``policy``, never ``trust``) or for the gold check
    (``trust``: the gold diffs are human-written, their own test edits count). The two judge
    in separate work dirs, so each keeps its own warm pool."""

    base = CESConfig.load()
    if gold:
        return CESConfig.load(
            edits_tests_policy="trust", work_dir=base.resolved_work_dir() / "gold-check"
        )
    if policy == "trust":
        raise ConfigError(
            "[eval] model_policy = 'trust' is refused: model output never edits the tests that "
            "judge it. Use 'both' (the default: the diff's tests and the base's, unmodified), 'pristine' (the base's tests only) or 'fail'."
        )
    return CESConfig.load(edits_tests_policy=policy)


def run_eval(
    dataset: Path,
    out: Path,
    *,
    model: str = "smollm2",
    strategy: str | None = None,
    split: str | None = None,
    samples: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    limit: int | None = None,
    echo: Echo | None = None,
    progress: bool = True,
    backend: Any = None,
    stages_for: Callable[[Path], dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Evaluate model ``model`` on ``dataset``'s ``split``; writes into ``out`` and returns the
    summary. ``backend`` may be passed to reuse an already loaded model; ``stages_for`` maps a
    materialised base tree to CES stage commands for it (e.g. a build scope's dune targets,
    which depend on the tree's directories), over ``[eval] stages``."""

    echo = echo or (lambda s: None)
    cfg = load_eval_config(
        split=split, samples=samples, temperature=temperature, max_tokens=max_tokens
    )
    _ces_config(cfg.model_policy)  # refuse "trust" before any work
    if cfg.samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {cfg.samples}.")
    mcfg = _gold_model() if model == "gold" else resolve_model(model)
    strat = get_strategy(strategy or mcfg.strategy)
    _, examples = load_dataset(Path(dataset))
    chosen = [e for e in examples if e.split == cfg.split]
    if not chosen:
        raise EvalError(
            f"Dataset {dataset} has no {cfg.split!r} examples (splits: "
            f"{sorted({str(e.split) for e in examples})}). Pick another --split."
        )
    chosen.sort(key=lambda e: e.id)
    if limit:
        chosen = chosen[:limit]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    temp = cfg.temperature if cfg.temperature is not None else (0.0 if cfg.samples == 1 else 0.8)
    sampling = mcfg.sampling(temperature=temp, max_tokens=cfg.max_tokens)
    meta = {
        "dataset": str(Path(dataset).resolve()),
        "split": cfg.split,
        "model": model,
        "model_config": mcfg.describe(),
        "strategy": strat.name,
        "samples": cfg.samples,
        "temperature": temp,
        "max_tokens": sampling.max_tokens,
        "examples": [e.id for e in chosen],
    }
    (out / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    # 1. bases and the gold check
    bases = {e.id: _base(e, out / "bases", cfg, stages_for) for e in chosen}
    gold = _gold_check(chosen, bases, out, cfg, echo)
    valid = [e for e in chosen if gold[e.id]["ok"]]
    echo(
        f"gold check: {len(valid)}/{len(chosen)} gold diffs pass on their base "
        f"(validity {100 * len(valid) / len(chosen):.0f}%)"
    )

    # 2. samples, resumable
    results_path = out / RESULTS
    done = {
        (r["model"], r["strategy"], r["example"], r["sample"]): r
        for r in _load_rows(results_path)
        if r.get("status") in ("judged", "no-edit")
    }
    todo = [
        e
        for e in valid
        if any((model, strat.name, e.id, i) not in done for i in range(cfg.samples))
    ]
    left = sum(
        1 for e in valid for i in range(cfg.samples) if (model, strat.name, e.id, i) not in done
    )
    echo(f"{left} samples to make and judge ({len(valid) - len(todo)} examples already done)")
    if todo:
        own = backend is None
        if backend is None and model == "gold":
            backend = GoldBackend(chosen, strat)
        backend = backend or make_backend(mcfg)
        try:
            _sample_and_judge(
                todo,
                bases,
                backend,
                strat,
                mcfg,
                sampling,
                cfg,
                model,
                done,
                results_path,
                progress,
                gold,
            )
        finally:
            if own:
                backend.close()

    # 3. summary and report
    return write_summary(out)


def _base(
    ex: Any, root: Path, cfg: EvalConfig, stages_for: Callable[[Path], dict[str, str]] | None
) -> Any:

    dest = root / ex.id
    marker = root / f"{ex.id}.ok"  # beside the tree, never inside it
    if not marker.exists():
        if dest.exists():
            shutil.rmtree(dest)
        materialize_base(ex, dest)
        marker.write_text("")
    stages = dict(cfg.stages)
    if stages_for is not None:
        stages.update(stages_for(dest))
    return BaseSpec(source=str(dest), stages=stages, require_green=ex.kind != "fix")


def _judge(jobs: list[Any], retries: int, config: Any) -> list[Any]:
    """CES verdicts for ``jobs``; those with an infrastructure error are retried."""

    be = get_backend("local", config)
    verdicts = list(be.evaluate(jobs))
    for _ in range(retries):
        again = [i for i, v in enumerate(verdicts) if v.error]
        if not again:
            break
        redo = be.evaluate([jobs[i] for i in again])
        for i, v in zip(again, redo, strict=True):
            verdicts[i] = v
    return verdicts


def _red_bases(specs: list[Any], config: Any, workers: int) -> dict[str, str]:
    """The bases among ``specs`` that must be green and are not: source -> first error."""

    be = get_backend("local", config)
    red: dict[str, str] = {}
    for spec in {s.source: s for s in specs if s.require_green}.values():
        try:
            be.warm(spec, workers)
        except BaseNotGreenError as exc:
            lines = [x for x in str(exc).split("Output:", 1)[-1].splitlines() if x.strip()]
            red[spec.source] = " ".join(lines[:3])[:300]
    return red


def _gold_check(
    chosen: list[Any], bases: dict[str, Any], out: Path, cfg: EvalConfig, echo: Echo
) -> dict[str, dict[str, Any]]:

    path = out / GOLD
    cached = {
        (r["example"], r["diff_hash"]): r for r in _load_rows(path) if not r.get("infra_error")
    }
    result: dict[str, dict[str, Any]] = {}
    jobs, todo = [], []
    for ex in chosen:
        key = (ex.id, diff_hash(ex.diff))
        if key in cached:
            result[ex.id] = cached[key]
        else:
            jobs.append(
                Job(base=bases[ex.id], diff=ex.diff, id=f"gold-{ex.id}", allow_lenient=False)
            )
            todo.append(ex)
    if jobs:
        config = _ces_config(cfg.model_policy, gold=True)
        app = _Appender(path)
        # a base that is not green (a change mined from a commit whose parent does not
        # build) excludes its example with the reason; it must not sink the whole run
        red = _red_bases([bases[ex.id] for ex in todo], config, cfg.ces_workers)
        for ex in [e for e in todo if bases[e.id].source in red]:
            row = {
                "example": ex.id,
                "kind": ex.kind,
                "diff_hash": diff_hash(ex.diff),
                "extracted_hash": None,
                "ok": False,
                "infra_error": None,
                "furthest": "base",
                "base_red": red[bases[ex.id].source],
                "stages": {},
                "verdict": {"ok": False, "flags": [], "stages": []},
            }
            app.write(row)
            result[ex.id] = row
        keep = [i for i, ex in enumerate(todo) if bases[ex.id].source not in red]
        jobs, todo = [jobs[i] for i in keep], [todo[i] for i in keep]
        verdicts = _judge(jobs, cfg.ces_retries, config) if jobs else []
        for ex, v in zip(todo, verdicts, strict=True):
            row = {
                "example": ex.id,
                "kind": ex.kind,
                "diff_hash": diff_hash(ex.diff),
                # the gold diff as a model's output parses back to this diff: a sample that
                # proposes exactly it gets the gold verdict without a second CES run
                "extracted_hash": diff_hash(get_strategy().parse(ex.diff, ex.files).diff),
                "ok": bool(v.ok and not v.error),
                "infra_error": v.error,
                "furthest": v.furthest,
                "stages": {s.name: s.status for s in v.stages},
                "verdict": v.to_dict(),
            }
            app.write(row)
            result[ex.id] = row
    for ex in chosen:
        r = result[ex.id]
        if not r["ok"]:
            why = (
                r.get("infra_error")
                or (r.get("base_red") and f"base not green: {r['base_red']}")
                or f"furthest stage {r.get('furthest')}"
            )
            echo(f"   gold not green, excluded: {ex.id} ({ex.kind}; {why})")
    return result


def _sample_and_judge(
    todo: list[Any],
    bases: dict[str, Any],
    backend: Any,
    strat: Strategy,
    mcfg: Any,
    sampling: Any,
    cfg: EvalConfig,
    model: str,
    done: dict[tuple[str, str, str, int], dict[str, Any]],
    results_path: Path,
    progress: bool,
    gold: dict[str, dict[str, Any]],
) -> None:

    ces = _ces_config(cfg.model_policy)
    app = _Appender(results_path)
    prompts = _Appender(results_path.parent / PROMPTS)
    verdict_cache = {
        (r["example"], r["diff_hash"]): r
        for r in _load_rows(results_path)
        if r.get("verdict") and r.get("status") == "judged"  # never reuse an infra error
    }
    gen_cache = {
        (r["model"], r["strategy"], r["example"], r["sample"], r["prompt_digest"]): r
        for r in _load_rows(results_path)
        if "output" in r
    }
    total = sum(
        1 for e in todo for i in range(cfg.samples) if (model, strat.name, e.id, i) not in done
    )
    bar = _Progress(total) if progress else None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bactrian-judge")
    pending: list[Future[None]] = []

    def judge(ex: Any, rows: list[dict[str, Any]]) -> None:
        jobs, idx = [], []
        for i, row in enumerate(rows):
            if not row["well_formed"]:
                row["status"] = "no-edit"
                continue
            hit = verdict_cache.get((ex.id, row["diff_hash"]))
            g = gold.get(ex.id)
            if (
                hit is None
                and g
                and g["ok"]
                and g.get("extracted_hash") == row["diff_hash"]
                and "edits-tests" not in g["verdict"].get("flags", [])
            ):
                hit = g  # same diff, same base; the test policy played no part
            if hit is not None:
                _attach(row, hit["verdict"])
                continue
            jobs.append(Job(base=bases[ex.id], diff=row["diff"], allow_lenient=True))
            idx.append(i)
        if jobs:
            for i, v in zip(idx, _judge(jobs, cfg.ces_retries, ces), strict=True):
                _attach(rows[i], v.to_dict())
        for row in rows:
            app.write(row)
            if bar:
                bar.step(what=f"({ex.id})")

    try:
        for ex in todo:
            missing = [i for i in range(cfg.samples) if (model, strat.name, ex.id, i) not in done]
            rendered = eval_prompt(
                ex, strat, count=backend.count_tokens, budget=mcfg.max_prompt_tokens
            )
            digest = rendered.digest()
            prompts.write({"example": ex.id, "digest": digest, "messages": rendered.messages})
            outputs: dict[int, dict[str, Any]] = {}
            for i in missing:
                hit = gen_cache.get((model, strat.name, ex.id, i, digest))
                if hit is not None:
                    outputs[i] = {
                        k: hit[k]
                        for k in (
                            "output",
                            "tokens_in",
                            "tokens_out",
                            "latency_s",
                            "ttft_s",
                            "finish_reason",
                        )
                    }
            need = [i for i in missing if i not in outputs]
            if need:
                seed = int(hashlib.sha256(f"{cfg.seed}:{ex.id}".encode()).hexdigest()[:8], 16)
                replies = backend.generate(
                    rendered.messages, replace(sampling, seed=seed), n=len(need)
                )
                for i, c in zip(need, replies, strict=False):
                    outputs[i] = {
                        "output": c.text,
                        "tokens_in": c.tokens_in,
                        "tokens_out": c.tokens_out,
                        "latency_s": c.latency_s,
                        "ttft_s": c.ttft_s,
                        "finish_reason": c.finish_reason,
                    }
            rows = []
            for i in missing:
                if i not in outputs:
                    continue
                o = outputs[i]
                parsed = strat.parse(o["output"], ex.files)
                rows.append(
                    {
                        "model": model,
                        "strategy": strat.name,
                        "example": ex.id,
                        "sample": i,
                        "kind": ex.kind,
                        "error_class": error_class(ex),
                        "prompt_digest": digest,
                        "prompt_tokens": rendered.tokens,
                        "cut": rendered.cut,
                        **o,
                        "well_formed": parsed.well_formed,
                        "formats": parsed.formats,
                        "parse_error": parsed.error,
                        "diff": parsed.diff,
                        "diff_hash": diff_hash(parsed.diff),
                        "status": "pending",
                        "passed": False,
                        "stages": {},
                        "verdict": None,
                    }
                )
            # judge this example while the model writes the next one
            pending.append(pool.submit(judge, ex, rows))
        for f in pending:
            f.result()
    finally:
        pool.shutdown(wait=True)
        if bar:
            bar.close()


def _attach(row: dict[str, Any], verdict: dict[str, Any]) -> None:
    row["verdict"] = verdict
    row["stages"] = {s["name"]: s["status"] for s in verdict.get("stages", [])}
    row["flags"] = list(verdict.get("flags", []))
    if verdict.get("error"):
        row["status"] = "infra-error"
        row["passed"] = False
    else:
        row["status"] = "judged"
        row["passed"] = bool(verdict.get("ok"))


def load_run(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(run.json, the latest row per sample, gold rows) of an eval output directory."""
    out = Path(out)
    if not (out / META).exists():
        raise EvalError(f"{out} is not an eval run (no {META}); make one with `bactrian eval run`.")
    meta = json.loads((out / META).read_text())
    latest: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for r in _load_rows(out / RESULTS):
        if r["model"] == meta["model"] and r["strategy"] == meta["strategy"]:
            latest[(r["model"], r["strategy"], r["example"], r["sample"])] = r
    wanted = set(meta["examples"])
    rows = [
        r
        for k, r in sorted(latest.items())
        if r["example"] in wanted and r["sample"] < meta["samples"]
    ]
    gold_rows: dict[str, dict[str, Any]] = {}
    for g in _load_rows(out / GOLD):
        if g["example"] in wanted:
            gold_rows[g["example"]] = g
    return meta, rows, list(gold_rows.values())


def write_summary(out: Path, compare_with: Path | None = None) -> dict[str, Any]:
    """Recompute ``summary.json`` and ``report.html`` of a run from its files."""

    out = Path(out)
    meta, rows, gold_rows = load_run(out)
    gold = {
        "judged": len(gold_rows),
        "valid": sum(1 for g in gold_rows if g["ok"]),
        "validity": (sum(1 for g in gold_rows if g["ok"]) / len(gold_rows)) if gold_rows else 0.0,
        "excluded": sorted(g["example"] for g in gold_rows if not g["ok"]),
    }
    summary = summarize(rows, samples=meta["samples"], gold=gold)
    summary.update(
        model=meta["model"],
        strategy=meta["strategy"],
        split=meta["split"],
        dataset=meta["dataset"],
        temperature=meta["temperature"],
    )
    comparison = None
    if compare_with is not None:
        other_meta, other_rows, _ = load_run(compare_with)
        try:
            comparison = compare(other_rows, rows)
        except ValueError as exc:
            raise EvalError(f"Cannot compare {compare_with} with {out}: {exc}.") from None
        comparison.update(
            a=str(compare_with), b=str(out), model_a=other_meta["model"], model_b=meta["model"]
        )
        summary["comparison"] = {k: v for k, v in comparison.items() if k != "per_example"}
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    prompts = {
        p["example"]: "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in p["messages"])
        for p in _load_rows(out / PROMPTS)
    }
    (out / REPORT).write_text(render_report(meta, summary, rows, gold_rows, comparison, prompts))
    return summary


def compare_runs(a: Path, b: Path) -> dict[str, Any]:
    """The paired comparison of run ``b`` against run ``a``."""

    _, rows_a, _ = load_run(a)
    _, rows_b, _ = load_run(b)
    try:
        return compare(rows_a, rows_b)
    except ValueError as exc:
        raise EvalError(f"Cannot compare {a} with {b}: {exc}.") from None


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary as the CLI (and the demo) print it."""
    g = summary.get("gold", {})
    f = summary["funnel"]
    lines = [
        f"validity: {g.get('valid', 0)}/{g.get('judged', 0)} gold diffs pass "
        f"({100 * g.get('validity', 0):.0f}%)",
        f"model {summary['model']} ({summary['strategy']}): {summary['examples']} examples x "
        f"{summary['samples_per_example']} samples, {summary['infra_errors']} CES infra errors",
        "funnel: " + "  ".join(f"{k} {100 * v:.0f}%" for k, v in f.items()),
        "pass@k: " + "  ".join(f"pass@{k} {100 * v:.1f}%" for k, v in summary["pass_at_k"].items()),
        f"not code changes: {summary['not_code_changes']}; mean latency "
        f"{summary['latency_s']['mean']:.2f} s; tokens in/out "
        f"{summary['tokens_in']['mean']:.0f}/{summary['tokens_out']['mean']:.0f}",
    ]
    if "comparison" in summary:
        c = summary["comparison"]
        lines.append(
            f"vs {c['model_a']}: difference {100 * c['difference']:+.1f} points "
            f"(95% CI {100 * c['ci95'][0]:+.1f} .. {100 * c['ci95'][1]:+.1f}), "
            f"McNemar p = {c['mcnemar_p']:.3g}"
        )
    return lines
