"""A real red → green episode is never dropped as comment-only: a doc comment moved into a
function body turns warning 50 into an error under dune's dev profile, and moving it back out
is a real fix. Recorded by the real snapshotter with real dune builds; the fix prompt keeps the
compiler's messages whole (a type error's expected type is on its second line), in the library
and in the human output."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.buildstatus.probe import choose_probe
from bactrian.cli import cli
from bactrian.mine.config import MineConfig
from bactrian.mine.mining import mine_workspaces
from bactrian.snapshot import take_snapshot
from bactrian.types import BuildState

AREA = "let area r = 3.14 *. r *. r\n\n"
GOOD = AREA + "(** The perimeter of a circle. *)\nlet perimeter r = 2. *. 3.14 *. r\n"
MISPLACED = AREA + "let perimeter r =\n  (** The perimeter of a circle. *)\n  2. *. 3.14 *. r\n"
FIXED = (
    AREA + "(** The perimeter of a circle of radius [r]. *)\nlet perimeter r = 2. *. 3.14 *. r\n"
)
HALF_BAD = FIXED + "\nlet half x : float = x / 2\n"
HALF_GOOD = FIXED + "\nlet half x : float = x /. 2.\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "lib").mkdir(parents=True)
    (ws / "dune-project").write_text("(lang dune 2.9)\n")
    (ws / "lib/dune").write_text("(library (name shapes))\n")
    probe = choose_probe(ws, probe="dune")
    t = 1_700_000_000.0
    states = []
    for k, text in enumerate([GOOD, MISPLACED, FIXED, HALF_BAD, HALF_GOOD]):
        (ws / "lib/shapes.ml").write_text(text)
        snap = take_snapshot(ws, probe=probe, now=t + 30 * k)
        states.append(snap.build.state)
    assert states == [BuildState.GREEN, BuildState.RED, BuildState.GREEN] + [
        BuildState.RED,
        BuildState.GREEN,
    ], states
    return ws


def test_a_doc_comment_warning_fix_is_kept_the_comment_only_change_is_not(
    workspace: Path,
) -> None:
    result = mine_workspaces([workspace], MineConfig())
    fixes = [e for e in result.examples if e.kind == "fix"]
    doc_fixes = [e for e in fixes if "-  (** The perimeter of a circle. *)" in e.diff]
    assert len(doc_fixes) == 1, [e.diff for e in fixes]
    (doc_fix,) = doc_fixes
    assert "warning 50" in doc_fix.prompt or "unattached documentation" in doc_fix.prompt
    assert doc_fix.stats["prompt_source"] == "diagnostics"
    # the green → green change around it only rewords a comment: that one goes
    assert result.report.dropped.get("comment_only") == 1
    assert {r["kind"] for r in result.report.reasons if r["filter"] == "comment_only"} == {"change"}


def test_a_type_error_prompt_keeps_the_expected_type(workspace: Path) -> None:
    result = mine_workspaces([workspace], MineConfig())
    fix = next(e for e in result.examples if e.kind == "fix" and "x /. 2." in e.diff)
    first, rest = fix.prompt.split("\n\n", 1)
    assert first == "fix the type error in shapes.ml"
    assert "This expression has type int" in rest
    assert rest.rstrip().endswith("float")  # the expected type, on the message's next line
    res = CliRunner().invoke(cli, ["mine", str(workspace), "--no-store"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if "fix the type error in shapes.ml" in ln)
    block = "\n".join(lines[head + 1 : head + 5])
    assert "This expression has type int" in block and "float" in block
    assert "[diagnostics]" in lines[head]
