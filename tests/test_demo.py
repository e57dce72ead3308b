"""The main job end to end: replay with real dune → timeline → mining → describing with
SmolLM2 → dataset → warm CES → gold diffs judged → SmolLM2 evaluated → the HTML report, which
opens in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bactrian.demo import run_demo, train_step
from bactrian.sample import EXPECTED_EPISODES
from tests.evaluate.browser import check_report
from tests.models.modelcache import use_model_cache

use_model_cache()


@pytest.mark.slow
def test_demo_runs_the_whole_loop_on_the_sample(tmp_path: Path) -> None:
    lines: list[str] = []
    out = tmp_path / "out"
    report = run_demo(out, speed=float("inf"), echo=lines.append, max_tokens=24, train=False)
    text = "\n".join(lines)
    assert report.snapshots == 17  # the untouched copy + 16 scripted steps
    # the timeline shows real compiler output for red snapshots
    assert "Syntax error" in text and "This expression has type" in text
    assert report.examples == len(EXPECTED_EPISODES)
    assert sum(report.prompt_sources.values()) == report.examples
    assert report.judged == report.examples and report.valid == report.judged
    assert f"validity: {report.valid}/{report.judged}" in text
    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert manifest["examples"] == report.examples
    assert sum(manifest["counts"]["by_split"].values()) == report.examples
    # every step has its one-line result
    for n in range(1, 9):
        assert f"== {n}/8 " in text
    assert text.count("   -> ") == 8
    s = report.eval_summary
    assert s["model"] == "smollm2" and s["examples"] == manifest["counts"]["by_split"]["heldout"]
    assert s["gold"]["judged"] == s["examples"]
    assert "pass@1" in text and "== Summary" in text
    for key in ("store", "examples_db", "dataset", "eval_run", "report"):
        assert report.paths[key] and report.paths[key] in text, key
        assert Path(report.paths[key]).exists(), key
    seen = check_report(Path(report.paths["report"]), tmp_path / "demo.png")
    assert seen["errors"] == [] and seen["blocked"] == []
    assert seen["funnel_bars"] == 6 and seen["rows"] == s["samples"]


def test_demo_training_step_says_when_training_is_not_there(tmp_path: Path) -> None:
    lines: list[str] = []
    got = train_step(
        tmp_path / "ds", tmp_path / "train", lines.append, module="bactrian.no_such_training"
    )
    assert got is None
    assert any("training is not available" in line for line in lines), lines


def test_demo_refuses_to_wipe_a_directory_it_did_not_write(tmp_path: Path) -> None:
    from bactrian.errors import WorkspaceError

    keep = tmp_path / "precious.txt"
    keep.write_text("mine")
    with pytest.raises(WorkspaceError, match="not an earlier demo output"):
        run_demo(tmp_path, echo=lambda _: None)
    assert keep.read_text() == "mine"
