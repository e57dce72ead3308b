"""The scripted session and its expected episodes, checked without building: every edit applies
to the shipped workspace, every step changes the tree, and the expected episodes are exactly
what the mining rules give on the script's intended states."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bactrian.errors import WorkspaceError
from bactrian.sample import (
    EXPECTED_EPISODES,
    SESSION,
    Edit,
    ExpectedEpisode,
    Session,
    Step,
    copy_workspace,
    read_tree,
    workspace_path,
)


def _episodes_by_rule(states: list[str]) -> set[tuple[str, int, int]]:
    """The mining rules over a list of green/red states: a red stretch followed by green is a
    fix (first red .. first green); if a green precedes it, it is also a change."""
    out: set[tuple[str, int, int]] = set()
    i = 0
    while i < len(states):
        if states[i] != "red":
            i += 1
            continue
        j = i
        while j < len(states) and states[j] == "red":
            j += 1
        if j < len(states):  # the stretch ends green
            out.add(("fix", i, j))
            if i > 0:
                out.add(("change", i - 1, j))
        i = j
    return out


def test_workspace_is_a_dune_project_with_six_modules_and_interfaces() -> None:
    ws = workspace_path()
    assert (ws / "dune-project").read_text().startswith("(lang dune 2.")
    mls = {p.stem for p in (ws / "lib").glob("*.ml")}
    mlis = {p.stem for p in (ws / "lib").glob("*.mli")}
    assert len(mls) >= 6 and mls == mlis
    assert "(executable" in (ws / "bin" / "dune").read_text()
    assert "alcotest" in (ws / "test" / "dune").read_text()
    assert not (ws / "_build").exists(), "the shipped workspace must never be built in place"


def test_session_shape() -> None:
    assert SESSION[0].at_s == 0 and SESSION[0].edits == [] and SESSION[0].expect == "green"
    gaps = [b.at_s - a.at_s for a, b in zip(SESSION.steps, SESSION.steps[1:], strict=False)]
    assert all(20 <= g <= 60 for g in gaps), gaps
    assert SESSION.expected_states()[-1] == "red", (
        "the session ends with a stretch that never builds"
    )
    ops = {e.op for s in SESSION for e in s.edits}
    assert ops == {"write", "replace", "delete"}


def test_every_edit_applies_and_every_step_changes_the_tree() -> None:
    trees = SESSION.trees(read_tree(workspace_path()))
    assert len(trees) == len(SESSION)
    for k in range(1, len(trees)):
        assert trees[k] != trees[k - 1], f"step {k} ({SESSION[k].title}) changes nothing"
    final = trees[-1]
    assert "lib/budget.ml" in final and "lib/budget.mli" not in final
    assert "mathc" not in final["lib/report.ml"]


def test_expected_episodes_are_exactly_what_the_rules_give() -> None:
    got = {(e.kind, e.start_step, e.end_step) for e in EXPECTED_EPISODES}
    assert got == _episodes_by_rule(SESSION.expected_states())
    assert len(got) == len(EXPECTED_EPISODES), "duplicate episodes"
    kinds = [e.kind for e in EXPECTED_EPISODES]
    assert kinds.count("fix") == 4 and kinds.count("change") == 4


def test_expected_episode_files_are_the_files_the_target_diff_touches() -> None:
    trees = SESSION.trees(read_tree(workspace_path()))
    for ep in EXPECTED_EPISODES:
        base, target = trees[ep.base_step], trees[ep.target_step]
        touched = {p for p in set(base) | set(target) if base.get(p) != target.get(p)}
        assert touched == ep.files, ep
        changed_lines = sum(
            abs(len(target.get(p, "").splitlines()) - len(base.get(p, "").splitlines()))
            for p in touched
        )
        assert changed_lines <= 100, f"{ep.note}: too large for the miner's size filter"


def test_episode_base_and_target_steps() -> None:
    fix = ExpectedEpisode("fix", 5, 7, frozenset({"a.ml"}), "")
    change = ExpectedEpisode("change", 4, 7, frozenset({"a.ml"}), "")
    assert (fix.base_step, fix.target_step) == (6, 7)
    assert (change.base_step, change.target_step) == (4, 7)
    assert fix.to_dict()["files"] == ["a.ml"]


def test_multi_file_change_spans_ml_mli_and_test() -> None:
    (multi,) = [e for e in EXPECTED_EPISODES if e.kind == "change" and len(e.files) >= 3]
    suffixes = {Path(f).suffix for f in multi.files}
    assert {".ml", ".mli"} <= suffixes and any(f.startswith("test/") for f in multi.files)


def test_session_json_round_trip() -> None:
    assert Session.from_dict(SESSION.to_dict()) == SESSION


_paths = st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}\.mli?", fullmatch=True)
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@given(path=_paths, content=_text, old=_text.filter(bool), new=_text)
def test_edit_dict_round_trip(path: str, content: str, old: str, new: str) -> None:
    edits = [Edit.write(path, content), Edit.delete(path)]
    if old != new:
        edits.append(Edit.replace(path, old, new))
    for edit in edits:
        assert Edit.from_dict(edit.to_dict()) == edit


@given(prefix=_text, old=_text.filter(bool), suffix=_text, new=_text)
def test_replace_changes_exactly_the_snippet_or_refuses(
    prefix: str, old: str, suffix: str, new: str
) -> None:
    assume(old != new)
    text = prefix + old + suffix
    files = {"a.ml": text}
    edit = Edit.replace("a.ml", old, new)
    if text.count(old) == 1:
        edit.apply_to(files)
        assert files["a.ml"] == prefix + new + suffix
    else:
        with pytest.raises(WorkspaceError, match="occurs"):
            edit.apply_to(files)
        assert files["a.ml"] == text


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "../x.ml", "a/../../x.ml", "", "a//b.ml", "a\\b.ml"]
)
def test_edit_paths_must_stay_inside_the_tree(bad: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        Edit.write(bad, "x")


def test_edits_on_disk(tmp_path: Path) -> None:
    (tmp_path / "a.ml").write_text("let x = 1\n")
    Edit.replace("a.ml", "1", "2").apply(tmp_path)
    assert (tmp_path / "a.ml").read_text() == "let x = 2\n"
    Edit.write("sub/b.ml", "let y = 3\n").apply(tmp_path)
    assert (tmp_path / "sub" / "b.ml").read_text() == "let y = 3\n"
    Edit.delete("a.ml").apply(tmp_path)
    assert not (tmp_path / "a.ml").exists()
    with pytest.raises(WorkspaceError, match="does not exist"):
        Edit.replace("a.ml", "2", "3").apply(tmp_path)


def test_session_validation() -> None:
    with pytest.raises(ValueError, match="step 0"):
        Session("s", [Step(5.0, "late start")])
    with pytest.raises(ValueError, match="not later"):
        Session("s", [Step(0.0, "start"), Step(30.0, "a"), Step(30.0, "b")])


def test_copy_workspace(tmp_path: Path) -> None:
    dest = copy_workspace(tmp_path / "ws")
    assert read_tree(dest) == read_tree(workspace_path())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert copy_workspace(empty) == empty
    with pytest.raises(WorkspaceError, match="not empty"):
        copy_workspace(dest)
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="is a file"):
        copy_workspace(tmp_path / "file")
