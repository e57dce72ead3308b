"""`bactrian eval run|report|compare` end to end on a tiny real OCaml repository, judged by
the real CES, with a scripted model server on loopback standing in for the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bactrian.cli import cli
from bactrian.dataset.splits import load_dataset
from bactrian.evaluate.run import EvalError, compare_runs, run_eval, write_summary
from tests.evaluate.conftest import write_config
from tests.models.fake_openai import FakeOpenAI

BROKEN = "```diff\n--- a/src/money.ml\n+++ b/src/money.ml\n@@ -1,1 +1,1 @@\n-type t = int\n+type t = in\n```"


def oracle(golds: dict[str, str], answers: dict[str, list[str]]) -> Any:
    """A model that answers each example (recognised by its request) with scripted outputs:
    "gold" → the gold diff, "prose" → no code change, "broken" → a diff that fails."""

    def reply(body: dict[str, Any]) -> list[str]:
        user = body["messages"][-1]["content"]
        for key, script in answers.items():
            if key in user:
                n = int(body.get("n", 1))
                out = {
                    "gold": f"```diff\n{golds[key]}```",
                    "prose": "I'll do it tomorrow.",
                    "broken": BROKEN,
                }
                return (
                    [out[s] for s in script[:n]]
                    if n == len(script)
                    else [out[s] for s in script[-n:]]
                )
        return ["no idea"]

    return reply


def golds_by_prompt(dataset: Path) -> tuple[dict[str, str], list[str]]:
    _, examples = load_dataset(dataset)
    return {e.prompt: e.diff for e in examples}, [
        e.prompt for e in sorted(examples, key=lambda e: e.id)
    ]


def test_eval_run_resume_report_and_compare(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golds, prompts = golds_by_prompt(dataset)
    first, second = prompts
    answers = {first: ["gold", "prose"], second: ["broken", "gold"]}
    with FakeOpenAI([oracle(golds, answers)] * 50) as server:
        write_config(tmp_path, {"oracle": server.base_url}, monkeypatch)
        out = tmp_path / "run"
        summary = run_eval(dataset, out, model="oracle", samples=2, progress=False)
        assert len(server.requests) == 2  # one batched request (n = 2) per example
        assert all(r["n"] == 2 for r in server.requests)

        assert summary["gold"]["validity"] == 1.0
        assert summary["examples"] == 2 and summary["samples"] == 4
        assert summary["not_code_changes"] == 1
        assert summary["pass_at_k"]["1"] == pytest.approx(0.5)
        assert summary["pass_at_k"]["2"] == pytest.approx(1.0)
        assert summary["funnel"]["well_formed"] == pytest.approx(0.75)
        assert summary["funnel"]["apply"] == pytest.approx(0.75)
        assert summary["funnel"]["typecheck"] == pytest.approx(0.5)  # the broken diff fails here
        assert summary["funnel"]["test"] == pytest.approx(0.5)
        assert summary["infra_errors"] == 0
        assert set(summary["by_kind"]) == {"change"} or set(summary["by_kind"]) <= {
            "change",
            "vcs-part",
        }
        for name in ("results.jsonl", "summary.json", "report.html", "gold.jsonl"):
            assert (out / name).is_file(), name

        # rerun: everything is cached, the model is not asked again
        again = run_eval(dataset, out, model="oracle", samples=2, progress=False)
        assert len(server.requests) == 2
        assert again["pass_at_k"] == summary["pass_at_k"]

        # an interrupted run (its last line cut off mid-write) redoes that sample only
        lines = (out / "results.jsonl").read_text().splitlines()
        (out / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:30])
        resumed = run_eval(dataset, out, model="oracle", samples=2, progress=False)
        assert len(server.requests) == 3 and server.requests[-1].get("n", 1) == 1
        assert resumed["samples"] == 4  # the cut sample is back (its answer may differ)

        # a second "model" that always answers with the gold diff; compare paired
        better = {first: ["gold", "gold"], second: ["gold", "gold"]}
    with FakeOpenAI([oracle(golds, better)] * 10) as server2:
        write_config(
            tmp_path, {"oracle": "http://127.0.0.1:9/v1", "gold": server2.base_url}, monkeypatch
        )
        out2 = tmp_path / "run2"
        s2 = run_eval(dataset, out2, model="gold", samples=2, progress=False)
    assert s2["pass_at_k"]["1"] == 1.0
    c = compare_runs(out, out2)
    assert c["examples"] == 2
    assert c["difference"] == pytest.approx(0.5)
    assert (c["a_only"], c["b_only"]) == (0, 1)  # first samples: pass/fail vs pass/pass
    assert c["mcnemar_p"] == pytest.approx(1.0)
    with_cmp = write_summary(out2, compare_with=out)
    assert with_cmp["comparison"]["difference"] == pytest.approx(0.5)
    assert "id='comparison'" in (out2 / "report.html").read_text()

    runner = CliRunner()
    res = runner.invoke(cli, ["eval", "compare", str(out), str(out2)])
    assert res.exit_code == 0, res.output
    assert "McNemar exact p = 1" in res.output
    res = runner.invoke(cli, ["eval", "report", str(out)])
    assert res.exit_code == 0 and "validity: 2/2" in res.output and "pass@1 50.0%" in res.output

    # runs over different example sets are refused with a clear message
    with FakeOpenAI([oracle(golds, better)] * 10) as server3:
        write_config(tmp_path, {"gold": server3.base_url}, monkeypatch)
        out3 = tmp_path / "run3"
        run_eval(dataset, out3, model="gold", samples=1, limit=1, progress=False)
    with pytest.raises(EvalError, match="different examples"):
        compare_runs(out, out3)
    res = runner.invoke(cli, ["eval", "compare", str(out), str(out3)])
    assert res.exit_code == 1 and "Error: Cannot compare" in res.output
    assert "Traceback" not in res.output


def test_results_rows_carry_the_cache_key(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golds, prompts = golds_by_prompt(dataset)
    answers = {p: ["gold"] for p in prompts}
    with FakeOpenAI([oracle(golds, answers)] * 5) as server:
        write_config(tmp_path, {"oracle": server.base_url}, monkeypatch)
        run_eval(dataset, tmp_path / "r", model="oracle", samples=1, progress=False)
    results = tmp_path / "r" / "results.jsonl"
    rows = [json.loads(x) for x in results.read_text().splitlines()]
    for r in rows:
        assert {"model", "strategy", "example", "sample", "diff_hash"} <= set(r)
        assert r["strategy"] == "unified-diff" and r["passed"] and r["status"] == "judged"
        assert r["verdict"]["ok"] is True

    # a sample recorded as a CES infrastructure error counts apart, never as a failure ...
    rows[0].update(
        status="infra-error", passed=False, verdict={**rows[0]["verdict"], "error": "worker lost"}
    )
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = write_summary(tmp_path / "r")
    assert (s["infra_errors"], s["samples"], s["pass@1"]) == (1, 1, 1.0)
    # ... and the next run judges it again (from the cached output: the model is not asked)
    asked = len(server.requests)
    with FakeOpenAI([]) as idle:
        write_config(tmp_path, {"oracle": idle.base_url}, monkeypatch)
        again = run_eval(dataset, tmp_path / "r", model="oracle", samples=1, progress=False)
    assert idle.requests == [] and asked == 2
    assert (again["infra_errors"], again["samples"], again["pass@1"]) == (0, 2, 1.0)


def test_unknown_model_and_empty_split_are_clear_errors(dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "eval",
            "run",
            "--dataset",
            str(dataset),
            "--model",
            "smolm2",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1 and "Did you mean: smollm2" in res.output
    res = runner.invoke(
        cli,
        [
            "eval",
            "run",
            "--dataset",
            str(dataset),
            "--split",
            "train",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1 and "no 'train' examples" in res.output
    res = runner.invoke(
        cli,
        ["eval", "run", "--dataset", str(dataset), "--out", str(tmp_path / "o")],
        env={"BACTRIAN_EVAL_MODEL_POLICY": "trust"},
    )
    assert res.exit_code == 1 and "'trust' is refused" in res.output
    res = runner.invoke(cli, ["eval", "report", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "is not an eval run" in res.output
