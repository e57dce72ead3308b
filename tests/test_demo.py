"""The main job end to end: replay with real dune → timeline → mining → dataset → CES."""

from __future__ import annotations

import json
from pathlib import Path

from bactrian.demo import run_demo
from bactrian.sample import EXPECTED_EPISODES


def test_demo_replays_mines_and_judges_the_sample(tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_demo(tmp_path / "out", speed=float("inf"), echo=lines.append)
    text = "\n".join(lines)
    assert report.snapshots == 17  # the untouched copy + 16 scripted steps
    # the timeline shows real compiler output for red snapshots
    assert "Syntax error" in text and "This expression has type" in text
    assert report.examples == len(EXPECTED_EPISODES)
    assert report.judged == report.examples and report.valid == report.judged
    assert f"validity: {report.valid}/{report.judged}" in text
    manifest = json.loads((tmp_path / "out" / "dataset" / "manifest.json").read_text())
    assert manifest["examples"] == report.examples
    assert sum(manifest["counts"]["by_split"].values()) == report.examples


def test_demo_refuses_to_wipe_a_directory_it_did_not_write(tmp_path: Path) -> None:
    import pytest

    from bactrian.errors import WorkspaceError

    keep = tmp_path / "precious.txt"
    keep.write_text("mine")
    with pytest.raises(WorkspaceError, match="not an earlier demo output"):
        run_demo(tmp_path, echo=lambda _: None)
    assert keep.read_text() == "mine"
