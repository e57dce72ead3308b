"""End to end: the sample workspace's scripted session is replayed (real snapshotter, real
dune), mined into a dataset, and its held-out split is evaluated with the gold diffs and with
SmolLM2 through the real CES; the JSON and HTML reports come out and open in Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bactrian.ces.api import shutdown
from bactrian.evaluate.run import run_eval, summary_lines, write_summary
from bactrian.mine.mining import mine_to_dataset
from bactrian.sample import replay
from tests.evaluate.browser import check_report

pytestmark = pytest.mark.slow


def test_gold_and_smollm2_on_the_sample_heldout(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    replay(ws, speed=1000.0)
    ds = tmp_path / "ds"
    examples, stats = mine_to_dataset([ws], ds)
    assert stats["by_split"].get("heldout", 0) >= 1, stats
    try:
        gold = run_eval(ds, tmp_path / "gold", model="gold", progress=False)
        assert gold["gold"]["judged"] == stats["by_split"]["heldout"]
        assert gold["gold"]["validity"] > 0
        # gold diffs that need their own test edits fail under the model-output policy
        assert gold["pass@1"] > 0
        small = run_eval(ds, tmp_path / "small", model="smollm2", max_tokens=48, progress=False)
    finally:
        shutdown()
    assert small["examples"] == gold["examples"]
    assert small["samples"] == small["examples"]
    assert 0.0 <= small["pass@1"] <= 1.0
    assert small["tokens_out"]["mean"] > 0
    rows = [json.loads(x) for x in (tmp_path / "small" / "results.jsonl").read_text().splitlines()]
    assert all(r["model"] == "smollm2" and r["status"] in ("judged", "no-edit") for r in rows)
    assert all(r["finish_reason"] in ("stop", "length") for r in rows), rows
    assert all(r["tokens_out"] > 1 for r in rows), rows
    assert json.loads((tmp_path / "small" / "summary.json").read_text())["model"] == "smollm2"
    compared = write_summary(tmp_path / "small", compare_with=tmp_path / "gold")
    assert compared["comparison"]["pass_rate_a"] == 1.0
    assert any(line.startswith("validity:") for line in summary_lines(compared))
    seen = check_report(tmp_path / "small" / "report.html", tmp_path / "small.png")
    assert seen["errors"] == [] and seen["blocked"] == []
    assert seen["funnel_bars"] == 6 and seen["rows"] == small["samples"]
