"""The HTML report in a real headless Chromium: figures present, a click opens an example's
drill-down, no console errors, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from bactrian.dataset.splits import load_dataset
from bactrian.evaluate.run import run_eval
from tests.evaluate.browser import check_report
from tests.evaluate.conftest import write_config
from tests.evaluate.test_eval_run import oracle
from tests.models.fake_openai import FakeOpenAI


def test_report_opens_in_chromium(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, examples = load_dataset(dataset)
    golds = {e.prompt: e.diff for e in examples}
    answers = {e.prompt: ["gold", "prose"] for e in examples}
    with FakeOpenAI([oracle(golds, answers)] * 5) as server:
        write_config(tmp_path, {"oracle": server.base_url}, monkeypatch)
        run_eval(dataset, tmp_path / "run", model="oracle", samples=2, progress=False)
    shot = tmp_path / "report.png"
    seen = check_report(tmp_path / "run" / "report.html", shot)
    assert seen["errors"] == [] and seen["blocked"] == []
    assert "oracle" in seen["title"]
    assert seen["funnel_bars"] == 6
    assert seen["passk_points"] == 2
    assert seen["kind_bars"] >= 1 and seen["errclass_bars"] == 1
    assert seen["rows"] == 4
    assert not seen["detail_visible_before"]
    assert "Model output" in seen["detail_text"] and "Verdict" in seen["detail_text"]
    assert shot.stat().st_size > 10_000
