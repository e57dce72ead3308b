"""The sample builds with real dune, and the session's steps have the states the script intends
when built directly with dune (independently of the snapshotter)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bactrian.sample import SESSION, copy_workspace
from bactrian.sample.replay import play


def dune_build(ws: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OCAML_COLOR="never", DUNE_CACHE="disabled")
    env.pop("INSIDE_DUNE", None)
    return subprocess.run(
        ["dune", "build", "@check", "@runtest", "--root", ".", "--display", "quiet"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def apply_steps(ws: Path, upto: int) -> None:
    for step in SESSION.steps[: upto + 1]:
        for edit in step.edits:
            edit.apply(ws)


def test_untouched_sample_builds_tests_and_runs(tmp_path: Path) -> None:
    ws = copy_workspace(tmp_path / "ws")
    result = dune_build(ws)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Test Successful" in result.stdout + result.stderr
    run = subprocess.run(
        ["dune", "exec", "--root", ".", "--display", "quiet", "--", "bin/tally_cli.exe"]
        + ["examples/household.ledger"],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "assets:bank       asset         2690.00" in run.stdout


def test_typo_step_is_a_syntax_error_and_its_fix_is_green(tmp_path: Path) -> None:
    ws = copy_workspace(tmp_path / "ws")
    apply_steps(ws, 2)
    red = dune_build(ws)
    assert red.returncode != 0
    assert 'File "lib/report.ml"' in red.stderr and "Syntax error" in red.stderr
    for edit in SESSION[3].edits:
        edit.apply(ws)
    green = dune_build(ws)
    assert green.returncode == 0, green.stderr


def test_new_failing_test_makes_the_build_red(tmp_path: Path) -> None:
    ws = copy_workspace(tmp_path / "ws")
    apply_steps(ws, 8)
    result = dune_build(ws)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "negative cents" in out and "FAIL" in out


@pytest.mark.slow
def test_every_step_builds_to_its_intended_state(tmp_path: Path) -> None:
    ws = copy_workspace(tmp_path / "ws")

    def build(index: int, step: object) -> str:
        return "green" if dune_build(ws).returncode == 0 else "red"

    states = play(ws, build, speed=float("inf"))
    assert states == SESSION.expected_states()
