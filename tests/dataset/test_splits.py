from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bactrian.dataset.example import Example
from bactrian.dataset.splits import (
    DatasetConfig,
    assign_splits,
    build_dataset,
    dataset_stats,
    export_dataset,
    group_key,
    materialize_base,
    render_chat,
    render_completion,
    show_example,
)
from bactrian.dataset.store import ExampleDB
from bactrian.errors import MiningError
from bactrian.mine.config import MineConfig
from bactrian.mine.filemap import apply_to_dir
from bactrian.mine.mining import mine_vcs
from bactrian.mine.textdiff import normalised_hash, render
from tests.mine.repos import make_git


def ex(i: int, ws: str = "/ws/a", t: float | None = None, body: str | None = None) -> Example:
    new = body or f"let v{i} = {i}\n"
    return Example(
        source=f"timeline:{ws}",
        kind="fix" if i % 2 else "change",
        diff=render({"a.ml": b"let z = 0\n"}, {"a.ml": f"let z = 0\n{new}".encode()}),
        context={"files": {"a.ml": "let z = 0\n"}, "diagnostics": []},
        prompt=f"add v{i}",
        base={"type": "snapshot", "workspace": ws, "snapshot": f"s{i}"},
        stats={"end_snapshot": f"e{i}"},
        created_at=1000.0 + (i if t is None else t),
    )


def test_splits_by_time_keep_heldout_latest_and_groups_together() -> None:
    items = [ex(i) for i in range(10)]
    # fix and change of one valley share the end snapshot: one group
    items[8].stats["end_snapshot"] = items[9].stats["end_snapshot"] = "e-last"
    kept, rule = assign_splits(items, DatasetConfig(heldout_fraction=0.2, rl_fraction=0.2))
    by = {e.id: e.split for e in kept}
    splits = [by[e.id] for e in sorted(kept, key=lambda e: e.created_at)]
    assert splits == ["train"] * 5 + ["rl"] * 2 + ["heldout"] * 3
    assert by[items[8].id] == by[items[9].id] == "heldout"
    latest_train = max(e.created_at for e in kept if e.split == "train")
    assert latest_train < min(e.created_at for e in kept if e.split == "heldout")
    assert rule["heldout_from_time"] == items[7].created_at


def test_heldout_workspaces_and_cross_split_near_duplicates() -> None:
    items = [ex(i) for i in range(6)] + [ex(10 + i, ws="/ws/b", t=-100 + i) for i in range(2)]
    # an early example that is a near duplicate (re-indented) of the latest one
    dup = ex(99, t=-5, body="let   v5 = 5\n")
    assert normalised_hash(dup.diff) == normalised_hash(items[5].diff)
    kept, rule = assign_splits(items + [dup], DatasetConfig(heldout_workspaces=["/ws/b"]))
    assert {e.split for e in kept if e.workspace == "/ws/b"} == {"heldout"}
    assert dup.id not in {e.id for e in kept}
    assert rule["cross_split_near_duplicates_dropped"] == 1
    hashes: dict[str, set[str]] = {}
    for e in kept:
        hashes.setdefault(e.split or "", set()).add(normalised_hash(e.diff))
    assert not hashes["train"] & hashes.get("heldout", set())


def test_build_stats_show_export(tmp_path: Path) -> None:
    items = [ex(i) for i in range(10)]
    manifest = build_dataset(tmp_path / "ds", items, mining_reports=[{"dropped": {"max_files": 2}}])
    assert manifest["split_rule"]["method"] == "time+workspace"
    assert "latest" in manifest["split_rule"]["text"]
    st = dataset_stats(tmp_path / "ds")
    assert st["examples"] == 10 and st["filters"] == {"max_files": 2}
    assert sum(st["by_split"].values()) == 10 and set(st["by_kind"]) == {"fix", "change"}
    shown = show_example(tmp_path / "ds", items[3].id[:10])
    assert shown.diff == items[3].diff and shown.split
    with pytest.raises(MiningError, match="No example"):
        show_example(tmp_path / "ds", "nope")
    lines = (tmp_path / "ds" / "heldout.jsonl").read_text().splitlines()
    assert all(json.loads(line)["split"] == "heldout" for line in lines)

    files = export_dataset(tmp_path / "ds", "parquet")
    table = pq.read_table(files[0])
    assert table.num_rows > 0 and {"id", "diff", "prompt", "messages"} <= set(table.column_names)
    chat = export_dataset(tmp_path / "ds", "chat")
    msg = json.loads(chat[0].read_text().splitlines()[0])["messages"]
    assert [m["role"] for m in msg] == ["system", "user", "assistant"]
    comp = export_dataset(tmp_path / "ds", "completion")
    row = json.loads(comp[0].read_text().splitlines()[0])
    assert row["completion"].startswith("diff --git")


def test_render_chat_and_completion() -> None:
    e = ex(1)
    msgs = render_chat(e)
    assert "File a.ml:" in msgs[1]["content"] and "Request: add v1" in msgs[1]["content"]
    assert msgs[2]["content"] == e.diff
    assert render_completion(e)["completion"] == e.diff


def test_empty_dataset_and_missing_dataset_are_clear(tmp_path: Path) -> None:
    with pytest.raises(MiningError, match="No mined examples"):
        build_dataset(tmp_path / "x", [])
    with pytest.raises(MiningError, match="not a bactrian dataset"):
        dataset_stats(tmp_path)


def test_vcs_examples_persist_and_materialise_their_base(tmp_path: Path) -> None:
    repo = make_git(tmp_path / "g")
    with ExampleDB() as db:
        first = mine_vcs(repo, "HEAD~4..HEAD", MineConfig(), db=db)
        again = mine_vcs(repo, "HEAD~4..HEAD", MineConfig(), db=db)
        stored = db.all()
    assert first.stored == len(first.examples) == len(stored) > 0
    assert again.stored == 0 and again.report.dropped["already_mined"] == len(first.examples)
    for e in stored:
        dest = materialize_base(e, tmp_path / "bases" / e.id)
        apply_to_dir(dest, e.diff)  # the gold diff applies to its base
    part2 = next(e for e in stored if e.kind == "vcs-part" and e.base["part"] == 2)
    dest = materialize_base(part2, tmp_path / "p2")
    assert (dest / "src" / "stats.ml").exists(), "earlier parts are applied to the base"


def test_a_hashed_share_of_workspaces_is_held_out_whole() -> None:
    items = [ex(i, ws=f"/ws/{i % 4}") for i in range(40)]
    kept, rule = assign_splits(items, DatasetConfig(heldout_workspace_fraction=0.25))
    held = rule["heldout_workspaces"]
    assert len(held) == 1
    assert {e.split for e in kept if e.workspace in held} == {"heldout"}
    others = [e for e in kept if e.workspace not in held]
    assert {"train", "rl", "heldout"} == {e.split for e in others}
    again, _ = assign_splits(
        [ex(i, ws=f"/ws/{i % 4}") for i in range(40)],
        DatasetConfig(heldout_workspace_fraction=0.25),
    )
    assert [e.split for e in again] == [e.split for e in kept]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30),  # body (collisions = near duplicates)
            st.integers(0, 3),  # workspace
            st.integers(0, 1000),  # time
            st.integers(0, 5),  # valley (group)
        ),
        max_size=40,
    ),
    st.floats(0, 0.5),
    st.floats(0, 0.5),
)
def test_splits_are_leakage_safe(
    specs: list[tuple[int, int, int, int]], held: float, rl: float
) -> None:
    items = []
    for i, (body, ws, t, valley) in enumerate(specs):
        e = ex(i, ws=f"/ws/{ws}", t=float(t), body=f"let v{body} = {body}\n")
        e.stats["end_snapshot"] = f"valley{valley}"
        items.append(e)
    kept, rule = assign_splits(items, DatasetConfig(heldout_fraction=held, rl_fraction=rl))
    order = {"train": 0, "rl": 1, "heldout": 2}
    groups: dict[str, set[str | None]] = {}
    for e in kept:
        groups.setdefault(group_key(e), set()).add(e.split)
    assert all(len(s) == 1 for s in groups.values()), "a group straddles splits"
    by_hash: dict[str, set[str | None]] = {}
    for e in kept:
        by_hash.setdefault(normalised_hash(e.diff), set()).add(e.split)
    assert all(len(s) == 1 for s in by_hash.values()), "a near duplicate crosses splits"
    # by time, within each source: every group of a later split starts no earlier than the
    # groups of earlier ones
    starts: dict[str, float] = {}
    for e in items:  # group start times before cross-split duplicates were dropped
        key = group_key(e)
        starts[key] = min(starts.get(key, e.created_at), e.created_at)
    for a in kept:
        for b in kept:
            if a.workspace == b.workspace and order[a.split or ""] < order[b.split or ""]:
                assert starts[group_key(a)] <= starts[group_key(b)]
    assert len(kept) + rule["cross_split_near_duplicates_dropped"] == len(items)
