"""Model backends and evaluation, side by side on this machine.

1. Batched local generation: k = 4 samples of one prompt in one batched ``generate`` call vs
   4 sequential calls on SmolLM2 (CPU), tokens per second (goal >= 2x).
2. The model server's overhead: tokens per second through ``models serve`` + the OpenAI
   backend vs the local backend in process (goal >= 0.9x).
3. Evaluation overhead over the bare CES: ``eval run --model gold`` (gold diffs fed as the
   model's output, gold check included) vs the same diffs through the CES in one batch, each
   from a cold CES work dir (goal <= 1.1x).

    .venv/bin/python benchmarks/bench_models.py [--rounds 3] [--no-docs]

Figures go to the "Models and evaluation" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

DOCS = HERE.parent / "docs" / "benchmarks.md"
SECTION = "## Models and evaluation"
PROMPT = [{"role": "user", "content": "Write an OCaml function that sums a list of integers."}]


def bench_batched(backend: object, rounds: int, tokens: int) -> dict[str, float]:
    from bactrian.models import Sampling

    batched, sequential = [], []
    for r in range(rounds):
        s = Sampling(max_tokens=tokens, temperature=0.8, seed=r)
        t = time.monotonic()
        out = backend.generate(PROMPT, s, n=4)  # type: ignore[attr-defined]
        batched.append(sum(c.tokens_out for c in out) / (time.monotonic() - t))
        t = time.monotonic()
        n = 0
        for i in range(4):
            (c,) = backend.generate(
                PROMPT, Sampling(max_tokens=tokens, temperature=0.8, seed=100 * r + i)
            )  # type: ignore[attr-defined]
            n += c.tokens_out
        sequential.append(n / (time.monotonic() - t))
    ratios = [b / s for b, s in zip(batched, sequential, strict=True)]
    return {
        "batched_tps": statistics.median(batched),
        "sequential_tps": statistics.median(sequential),
        "ratio": statistics.median(ratios),
    }


def bench_server(backend: object, rounds: int, tokens: int) -> dict[str, float]:
    from bactrian.models import OpenAICompatibleBackend, Sampling
    from bactrian.models.server import ModelServer

    s = Sampling(max_tokens=tokens, temperature=0.0)
    local, remote = [], []
    with ModelServer(backend, "smollm2") as server:  # type: ignore[arg-type]
        client = OpenAICompatibleBackend(server.base_url, "smollm2", timeout_s=600)
        client.generate(PROMPT, s)  # warm the route
        for _ in range(rounds):
            t = time.monotonic()
            (c,) = backend.generate(PROMPT, s)  # type: ignore[attr-defined]
            local.append(c.tokens_out / (time.monotonic() - t))
            t = time.monotonic()
            (c,) = client.generate(PROMPT, s)
            remote.append(c.tokens_out / (time.monotonic() - t))
    ratios = [r / loc for r, loc in zip(remote, local, strict=True)]
    return {
        "local_tps": statistics.median(local),
        "server_tps": statistics.median(remote),
        "ratio": statistics.median(ratios),
    }


def bench_eval_overhead(scratch: Path) -> dict[str, float]:
    from tests.evaluate.conftest import STAGES, make_repo

    from bactrian.ces.api import get_backend, shutdown
    from bactrian.ces.config import CESConfig
    from bactrian.ces.contract import BaseSpec, Job
    from bactrian.dataset.splits import DatasetConfig, build_dataset, load_dataset, materialize_base
    from bactrian.dataset.store import ExampleDB
    from bactrian.evaluate.run import run_eval
    from bactrian.mine.config import MineConfig
    from bactrian.mine.mining import mine_vcs

    os.environ["BACTRIAN_DATA_DIR"] = str(scratch / "data")
    repo = make_repo(scratch / "repo")
    with ExampleDB() as db:
        mine_vcs(repo, "HEAD~2..HEAD", MineConfig(), db=db)
        examples = db.all()
    ds = scratch / "ds"
    build_dataset(ds, examples, DatasetConfig(heldout_fraction=1.0, rl_fraction=0.0))
    _, examples = load_dataset(ds)
    cfg_file = scratch / "config.toml"
    stages = ", ".join(f'{k} = "{v}"' for k, v in STAGES.items())
    cfg_file.write_text(f"[eval]\nstages = {{ {stages} }}\n\n[ces]\nworkers = 1\n")
    os.environ["BACTRIAN_CONFIG"] = str(cfg_file)

    # bare: the same diffs on the same bases, one CES batch, cold work dir
    jobs = []
    for ex in examples:
        base = materialize_base(ex, scratch / "bare-bases" / ex.id)
        spec = BaseSpec(source=str(base), stages=dict(STAGES), require_green=ex.kind != "fix")
        jobs.append(Job(base=spec, diff=ex.diff))
    t = time.monotonic()
    be = get_backend("local", CESConfig.load(work_dir=scratch / "ces-bare"))
    verdicts = be.evaluate(jobs)
    bare = time.monotonic() - t
    shutdown()
    assert all(v.ok for v in verdicts), [v.to_dict() for v in verdicts]

    os.environ["BACTRIAN_CES_WORK_DIR"] = str(scratch / "ces-eval")
    t = time.monotonic()
    summary = run_eval(ds, scratch / "eval", model="gold", progress=False)
    full = time.monotonic() - t
    shutdown()
    assert summary["pass@1"] == 1.0, summary
    return {"bare_s": bare, "eval_s": full, "ratio": full / bare, "examples": len(examples)}


def render(r: dict[str, dict[str, float]], rounds: int, tokens: int) -> str:
    today = dt.date.today().isoformat()
    b, s, e = r["batched"], r["server"], r["eval"]

    def mark(ok: bool) -> str:
        return "✅" if ok else "❌"

    return f"""{SECTION}

Command: `.venv/bin/python benchmarks/bench_models.py` — {today}, {platform.node() or "vm"}
({os.cpu_count()} cores, shared), SmolLM2-135M-Instruct (float32, CPU), {tokens} new tokens per
sample, {rounds} interleaved rounds (ratio = median of per-round ratios).

| measure | bactrian | reference | ratio | goal |
|---|---|---|---|---|
| batched generation, k = 4 in one call | {b["batched_tps"]:.1f} tokens/s | 4 sequential calls {b["sequential_tps"]:.1f} tokens/s | {b["ratio"]:.2f} | ≥ 2 {mark(b["ratio"] >= 2)} |
| `models serve` + OpenAI backend | {s["server_tps"]:.1f} tokens/s | in-process local backend {s["local_tps"]:.1f} tokens/s | {s["ratio"]:.2f} | ≥ 0.9 {mark(s["ratio"] >= 0.9)} |
| `eval run --model gold` ({e["examples"]:.0f} examples, gold check included) | {e["eval_s"]:.1f} s | same diffs, one bare CES batch {e["bare_s"]:.1f} s | {e["ratio"]:.2f} | ≤ 1.1 {mark(e["ratio"] <= 1.1)} |

How: the eval run's gold check judges each gold diff once; a sample that proposes exactly the
gold diff reuses that verdict (same diff, same base; only when the test policy played no part,
i.e. the gold verdict has no `edits-tests` flag), so feeding the gold diffs as
the model output costs one CES pass plus evaluation's own bookkeeping. Both sides start from a
cold CES work dir (the warm-up builds are inside both figures).

"""


def write_docs(section: str) -> None:
    text = DOCS.read_text()
    if SECTION not in text:
        DOCS.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    start = text.index(SECTION)
    nxt = text.find("\n## ", start + len(SECTION))
    end = len(text) if nxt < 0 else nxt + 1
    DOCS.write_text(text[:start] + section + text[end:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = ap.parse_args(argv)
    from bactrian.config import data_dir
    from bactrian.models import Sampling, make_backend

    # the converted SmolLM2 stays in the real model cache, not in the scratch data dir
    os.environ.setdefault("BACTRIAN_MODEL_CACHE", str(data_dir() / "models"))
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        scratch = Path(tmp)
        result = {"eval": bench_eval_overhead(scratch)}
        print("eval overhead:", result["eval"], flush=True)
        backend = make_backend("smollm2")
        backend.generate(PROMPT, Sampling(max_tokens=4))  # warm up
        result["batched"] = bench_batched(backend, args.rounds, args.tokens)
        print("batched:", result["batched"], flush=True)
        result["server"] = bench_server(backend, args.rounds, args.tokens)
        print("server:", result["server"], flush=True)
    section = render(result, args.rounds, args.tokens)
    print(section)
    if not args.no_docs:
        write_docs(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
