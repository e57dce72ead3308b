"""Replaying the sample's scripted session (real snapshotter, real dune) and mining it yields
exactly the episodes the script contains."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bactrian.dataset.splits import materialize_base
from bactrian.dataset.store import ExampleDB
from bactrian.mine.config import MineConfig
from bactrian.mine.mining import mine_workspaces
from bactrian.mine.textdiff import split_files
from bactrian.mine.timeline import mine_store
from bactrian.sample import EXPECTED_EPISODES, replay
from bactrian.snapshot import open_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("replay-home")
    old = os.environ.get("BACTRIAN_DATA_DIR")
    os.environ["BACTRIAN_DATA_DIR"] = str(home / "data")
    try:
        ws = home / "ws"
        replay(ws, speed=1000.0)
        yield ws  # type: ignore[misc]
    finally:
        if old is None:
            os.environ.pop("BACTRIAN_DATA_DIR", None)
        else:
            os.environ["BACTRIAN_DATA_DIR"] = old


def _data_env(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACTRIAN_DATA_DIR", str(ws.parent / "data"))


def test_mining_the_replay_yields_exactly_the_scripted_episodes(
    replayed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _data_env(replayed, monkeypatch)
    store = open_store(replayed)
    examples, skipped = mine_store(store, MineConfig())
    got = sorted(
        (
            e.kind,
            e.stats["steps"][0],
            e.stats["steps"][1],
            frozenset(f.path for f in split_files(e.diff)),
        )
        for e in examples
    )
    want = sorted((e.kind, e.start_step, e.end_step, e.files) for e in EXPECTED_EPISODES)
    assert got == want
    assert skipped == {}
    for ex in examples:
        if ex.kind == "fix":
            # prompt source: real compiler output recorded at the red snapshot
            assert ex.diagnostics, ex.stats
            assert ex.diagnostics[0]["file"].endswith((".ml", ".mli"))
        # no future leaks: context files are the base snapshot's contents
        base_files = store.read_files(store.get(ex.base["seq"]), list(ex.files))
        assert {p: t.encode() for p, t in ex.files.items()} == base_files
        assert set(ex.files) >= {f.path for f in split_files(ex.diff) if not f.new_file}


def test_mined_diffs_apply_to_their_materialised_base(
    replayed: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _data_env(replayed, monkeypatch)
    with ExampleDB() as db:
        result = mine_workspaces([replayed], MineConfig(), db=db)
    assert {e.kind for e in result.examples} == {"fix", "change"}
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
    for ex in result.examples:
        dest = tmp_path / ex.id
        materialize_base(ex, dest)
        subprocess.run(
            ["git", "apply", "--check", "-"],
            cwd=dest,
            input=ex.diff,
            text=True,
            check=True,
            env=env,
        )
        if ex.kind == "fix":
            assert ex.prompt.split("\n\n")[0].startswith(("fix", "make")), ex.prompt
            assert ex.diagnostics[0]["file"] in ex.prompt
    syntax = next(e for e in result.examples if e.kind == "fix" and e.stats["steps"] == [2, 3])
    assert syntax.prompt.startswith("fix the syntax error in report.ml")


def test_mine_to_dataset_for_the_demo(
    replayed: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bactrian.mine.mining import mine_to_dataset, summary_lines

    _data_env(replayed, monkeypatch)
    monkeypatch.setenv("BACTRIAN_DATA_DIR", str(tmp_path / "fresh-data"))
    monkeypatch.setenv("BACTRIAN_SNAPSHOT_STORE_DIR", str(replayed.parent / "data" / "snapshots"))
    examples, stats = mine_to_dataset([replayed], tmp_path / "ds")
    assert len(examples) == len(EXPECTED_EPISODES)
    assert stats["examples"] == len(examples)
    assert set(stats["by_split"]) <= {"train", "rl", "heldout"} and "heldout" in stats["by_split"]
    lines = summary_lines(examples, stats)
    assert lines[0].startswith("fix     [2, 3]") and "fix the syntax error in report.ml" in lines[0]
    assert lines[-1].startswith(f"dataset: {len(examples)} examples")


def test_cli_mine_workspace_json(replayed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from bactrian.cli import cli

    _data_env(replayed, monkeypatch)
    res = CliRunner().invoke(cli, ["mine", str(replayed), "--json", "--no-store"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    kinds = sorted(e["kind"] for e in data["examples"])
    assert kinds == sorted(e.kind for e in EXPECTED_EPISODES)
    assert all(e["diff"].startswith("diff --git") for e in data["examples"])


def test_ray_executor_mines_the_same_examples(
    replayed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _data_env(replayed, monkeypatch)
    local = mine_workspaces([replayed], MineConfig(), executor="local")
    on_ray = mine_workspaces([replayed], MineConfig(), executor="ray")
    assert [e.to_dict() for e in on_ray.examples] == [e.to_dict() for e in local.examples]
    assert on_ray.report.to_dict() == local.report.to_dict()
