"""``replay`` end to end: the real snapshotter records one snapshot per scripted step with real
dune builds, and the recorded timeline is what the script intends."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.cli import cli
from bactrian.errors import ConfigError, WorkspaceError
from bactrian.sample import EXPECTED_EPISODES, SESSION, read_tree, replay, workspace_path
from bactrian.sample.replay import check_speed, play
from bactrian.snapshot import Snapshot, SnapshotConfig, open_store

START = 1_700_000_000.0


@dataclass
class Replayed:
    dest: Path
    config: SnapshotConfig
    snaps: list[Snapshot]
    lines: list[str]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    """One replay shared by the tests of this module (in its own data and config dirs)."""
    home = tmp_path_factory.mktemp("replay-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACTRIAN_DATA_DIR", str(home / "data"))
        mp.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
        mp.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
        mp.delenv("BACTRIAN_CONFIG", raising=False)
        config = SnapshotConfig(store_dir=home / "store")
        lines: list[str] = []
        dest = home / "ws"
        snaps = replay(dest, speed=math.inf, config=config, start_time=START, progress=lines.append)
        yield Replayed(dest.resolve(), config, snaps, lines)


def test_timeline_states_match_the_script(replayed: Replayed) -> None:
    states = [s.build.state.value for s in replayed.snaps]
    assert states == SESSION.expected_states()
    store = open_store(replayed.dest, replayed.config)
    try:
        timeline = store.timeline()
    finally:
        store.close()
    assert [s.seq for s in timeline] == list(range(1, len(SESSION) + 1))
    assert [s.id for s in timeline] == [s.id for s in replayed.snaps]
    assert [s.build.state.value for s in timeline] == states
    assert [s.time for s in timeline] == [START + step.at_s for step in SESSION]


def test_red_snapshots_carry_real_compiler_diagnostics(replayed: Replayed) -> None:
    snaps = replayed.snaps
    typo = snaps[2].build
    assert typo.diagnostics and typo.diagnostics[0].file == "lib/report.ml"
    assert "Syntax error" in typo.log
    assert snaps[5].build.diagnostics[0].file == "lib/ledger.ml"
    assert "This expression has type" in snaps[5].build.log
    assert "negative cents" in snaps[8].build.log
    assert "dune build" in typo.command and "@runtest" in typo.command
    for s in snaps:
        assert s.build.exit_code == (0 if s.build.state.value == "green" else 1)


def test_progress_prints_one_line_per_snapshot(replayed: Replayed) -> None:
    assert len(replayed.lines) == len(SESSION)
    assert replayed.lines[0].startswith("#1 ") and "green" in replayed.lines[0]
    assert re.match(
        r"#3 +t=\+85 +red +lib/report\.ml:\d+:\d+: error: Syntax error", replayed.lines[2]
    )


def test_workspace_holds_exactly_the_scripted_tree_plus_the_build_dir(replayed: Replayed) -> None:
    final = SESSION.trees(read_tree(workspace_path()))[-1]
    assert read_tree(replayed.dest) == final
    extra = {p.name for p in replayed.dest.iterdir()} - {p.split("/")[0] for p in final}
    assert extra == {"_build"}


def test_expected_episodes_match_the_recorded_diffs(replayed: Replayed) -> None:
    store = open_store(replayed.dest, replayed.config)
    try:
        for ep in EXPECTED_EPISODES:
            base, target = replayed.snaps[ep.base_step], replayed.snaps[ep.target_step]
            text = store.diff(base, target)
            touched = set(re.findall(r"^diff --git a/(\S+) b/", text, flags=re.M))
            assert touched == ep.files, (ep, text)
            assert base.build.state.value == ("red" if ep.kind == "fix" else "green")
            assert target.build.state.value == "green"
    finally:
        store.close()


def test_replaying_onto_a_recorded_path_is_refused(replayed: Replayed) -> None:
    with pytest.raises(WorkspaceError, match="already recorded"):
        replay(replayed.dest, speed=math.inf, config=replayed.config)


def test_replay_into_a_non_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceError, match="not empty"):
        replay(tmp_path / "ws", speed=math.inf)
    assert (tmp_path / "ws" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("speed", [0.0, -1.0, math.nan])
def test_bad_speed_is_a_config_error(speed: float) -> None:
    with pytest.raises(ConfigError, match="speed"):
        check_speed(speed)


def test_play_applies_each_step_before_calling_back(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(workspace_path(), ws)
    trees = SESSION.trees(read_tree(workspace_path()))
    seen = play(ws, lambda i, step: (i, read_tree(ws)), speed=math.inf)
    assert [i for i, _ in seen] == list(range(len(SESSION)))
    assert [tree for _, tree in seen] == trees


def test_cli_session_and_copy(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["sample", "session", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["steps"]) == len(SESSION)
    assert [e["kind"] for e in data["expected_episodes"]] == [e.kind for e in EXPECTED_EPISODES]
    text = runner.invoke(cli, ["sample", "session"])
    assert "mathc" in text.output and "Expected episodes" in text.output
    out = runner.invoke(cli, ["sample", "copy", str(tmp_path / "c")])
    assert out.exit_code == 0 and (tmp_path / "c" / "dune-project").is_file()
    again = runner.invoke(cli, ["sample", "copy", str(tmp_path / "c")])
    assert again.exit_code == 1 and "not empty" in again.output


@pytest.mark.slow
def test_cli_replay_json_then_snapshot_list(tmp_path: Path) -> None:
    runner = CliRunner()
    dest = tmp_path / "ws"
    result = runner.invoke(cli, ["sample", "replay", str(dest), "--speed", "inf", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [s["state"] for s in data["snapshots"]] == SESSION.expected_states()
    assert data["snapshots"][2]["first_diagnostic"].startswith("lib/report.ml:")
    listing = runner.invoke(cli, ["snapshot", "list", str(dest)])
    assert listing.exit_code == 0, listing.output
    assert listing.output.count("red") == SESSION.expected_states().count("red")
