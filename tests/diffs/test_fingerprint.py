"""One diff model: stats, dedup hashes and the miner's per-file view all read parse_patch."""

from __future__ import annotations

from bactrian.diffs import exact_hash, normalised_hash, parse_patch, render_diff
from bactrian.mine.textdiff import diff_stats, split_files


def test_a_path_containing_space_b_slash_is_read_whole() -> None:
    # the old regex (diff --git a/(.*) b/(.*)) cut this path at its inner " b/"
    diff = render_diff({"x b/m.ml": b"let a = 1\n"}, {"x b/m.ml": b"let a = 2\n"})
    assert [f.path for f in split_files(diff)] == ["x b/m.ml"]
    assert [fp.path for fp in parse_patch(diff).files] == ["x b/m.ml"]


def test_stats_count_changed_lines() -> None:
    diff = render_diff(
        {"a.ml": b"1\n2\n3\n", "gone.ml": b"x\n"}, {"a.ml": b"1\nTWO\n3\n4\n", "new.ml": b"n\n"}
    )
    stats = parse_patch(diff).stats()
    assert stats == {"files": 3, "added": 3, "removed": 2, "changed": 5}
    assert diff_stats(diff) == stats
    files = {f.path: f for f in split_files(diff)}
    assert files["new.ml"].new_file and files["gone.ml"].deleted
    assert files["a.ml"].added == ["TWO", "4"] and files["a.ml"].removed == ["2"]


def test_near_hash_ignores_position_and_whitespace_but_not_content() -> None:
    a = render_diff({"d/m.ml": b"a\nb\nlet x = 1\n"}, {"d/m.ml": b"a\nb\nlet x = 2\n"})
    moved = render_diff({"e/m.ml": b"let  x = 1\nz\n"}, {"e/m.ml": b"let x   = 2\nz\n"})
    other = render_diff({"d/m.ml": b"let x = 1\n"}, {"d/m.ml": b"let x = 3\n"})
    assert normalised_hash(a) == normalised_hash(moved) == normalised_hash(parse_patch(a))
    assert normalised_hash(a) != normalised_hash(other)
    assert exact_hash(a) != exact_hash(moved)


def test_text_that_is_not_a_diff_has_no_files_and_a_stable_hash() -> None:
    assert split_files("not a diff\n") == [] and diff_stats("")["files"] == 0
    assert normalised_hash("not  a diff") == normalised_hash("not a\ndiff")
