"""The CES on the bundled sample workspace (a real multi-module dune project with alcotest)."""

from __future__ import annotations

from pathlib import Path

from bactrian import sample
from bactrian.ces import api

from .conftest import small_config
from .project import udiff


def _edit(root: Path, rel: str, old: str, new: str) -> str:
    text = (root / rel).read_text()
    assert old in text
    return udiff(rel, text, text.replace(old, new, 1))


def test_sample_workspace_verdicts(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    sample.copy_workspace(ws)
    config = small_config(tmp_path / "work", workers=1, stage_timeouts={"test": 60.0})
    green = _edit(ws, "lib/util.ml", "if len >= n then s else s ^", "if n <= len then s else s ^")
    typed = _edit(ws, "lib/util.ml", "let len = String.length s in", "let len = String.length 1 in")
    broken = _edit(ws, "lib/util.ml", '|> List.filter (fun w -> w <> "")', "")
    try:
        verdicts = api.evaluate(ws, [green, typed, broken, green], config=config)
    finally:
        api.shutdown()
    assert verdicts[0].ok, verdicts[0].to_dict()
    assert verdicts[0].tests and verdicts[0].tests["total"] >= 6
    assert verdicts[1].furthest == "parse"
    assert verdicts[2].furthest == "build" and verdicts[2].tests and verdicts[2].tests["failed"] > 0
    assert verdicts[3].fingerprint() == verdicts[0].fingerprint()
