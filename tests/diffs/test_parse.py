"""Parsing: headers of every kind, hunk forms, errors that name the line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bactrian.diffs import parse_patch, touched_paths
from bactrian.diffs.parse import split_lines, unquote_path
from bactrian.diffs.render import quote_path
from bactrian.errors import DiffParseError


def test_git_headers_new_deleted_mode_and_index() -> None:
    text = (
        "diff --git a/new.ml b/new.ml\nnew file mode 100755\nindex 0000000..e69de29\n"
        "--- /dev/null\n+++ b/new.ml\n@@ -0,0 +1,2 @@\n+a\n+b\n"
        "diff --git a/old.ml b/old.ml\ndeleted file mode 100644\nindex e69de29..0000000\n"
        "--- a/old.ml\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n"
        "diff --git a/empty b/empty\nnew file mode 100644\nindex 0000000..e69de29\n"
    )
    p = parse_patch(text)
    new, old, empty = p.files
    assert new.is_new and new.new_path == "new.ml" and new.new_mode == "100755"
    assert new.hunks[0].new_lines == ["a\n", "b\n"]
    assert old.is_delete and old.old_path == "old.ml" and old.hunks[0].old_lines == ["x\n"]
    assert empty.is_new and empty.hunks == []
    assert touched_paths(p) == ["empty", "new.ml", "old.ml"]


def test_plain_headers_with_timestamps_and_without_prefixes() -> None:
    text = (
        "--- src/a.ml\t2024-01-01 10:00:00.000000000 +0100\n"
        "+++ src/a.ml\t2024-01-02 10:00:00.000000000 +0100\n"
        "@@ -1 +1 @@\n-a\n+b\n"
    )
    (fp,) = parse_patch(text).files
    assert fp.old_path == fp.new_path == "src/a.ml" and not fp.git_header
    (fp,) = parse_patch("--- a/src/a.ml  \n+++ b/src/a.ml \n@@ -1 +1 @@\n-a\n+b\n").files
    assert fp.path == "src/a.ml"  # trailing blanks a model left after the name


def test_quoted_and_spaced_paths() -> None:
    text = (
        'diff --git "a/caf\\303\\251 x.ml" "b/caf\\303\\251 x.ml"\n'
        '--- "a/caf\\303\\251 x.ml"\n+++ "b/caf\\303\\251 x.ml"\n@@ -1 +1 @@\n-a\n+b\n'
        "diff --git a/with space.ml b/with space.ml\nold mode 100644\nnew mode 100755\n"
    )
    a, b = parse_patch(text).files
    assert a.path == "caf\u00e9 x.ml"
    assert b.path == "with space.ml" and b.new_mode == "100755"


@given(st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s))
def test_quote_round_trip(name: str) -> None:
    q = quote_path(name)
    assert unquote_path(q) == name
    assert q == name or (q.startswith('"') and q.isascii())


def test_renames_and_copies() -> None:
    text = (
        "diff --git a/x.ml b/y.ml\nsimilarity index 100%\nrename from x.ml\nrename to y.ml\n"
        "diff --git a/p.ml b/q.ml\nsimilarity index 80%\ncopy from p.ml\ncopy to q.ml\n"
        "--- a/p.ml\n+++ b/q.ml\n@@ -1 +1 @@\n-a\n+b\n"
    )
    r, c = parse_patch(text).files
    assert (r.old_path, r.new_path, r.is_rename, r.similarity) == ("x.ml", "y.ml", True, 100)
    assert (c.old_path, c.new_path, c.is_copy, c.similarity) == ("p.ml", "q.ml", True, 80)
    assert len(c.hunks) == 1


def test_no_newline_markers_and_crlf() -> None:
    text = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\r\n-b\r\n\\ No newline at end of file\n+c\r\n"
    (fp,) = parse_patch(text).files
    assert fp.hunks[0].lines == [(" ", "a\r\n"), ("-", "b\r"), ("+", "c\r\n")]


def test_bare_and_wrong_count_hunks_are_marked() -> None:
    text = "--- a/f\n+++ b/f\n@@\n a\n-b\n+c\n@@ -9,1 +9,1 @@\n d\n-e\n+f\n g\n"
    h1, h2 = parse_patch(text).files[0].hunks
    assert not h1.numbered and not h1.counts_ok and h1.changed() == 2
    assert h2.numbered and not h2.counts_ok and h2.old_lines == ["d\n", "e\n", "g\n"]


def test_counts_decide_where_a_hunk_ends() -> None:
    # the '--- a/g' line belongs to the next file, not to the hunk
    text = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n--- a/g\n+++ b/g\n@@ -1 +1 @@\n-c\n+d\n"
    f, g = parse_patch(text).files
    assert f.hunks[0].counts_ok and g.path == "g"
    # an email signature after the last hunk (git format-patch) is not a removed line
    sig = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n-- \n2.43.0\n\n"
    (f,) = parse_patch(sig).files
    assert f.hunks[0].lines == [("-", "a\n"), ("+", "b\n")]


def test_empty_lines_in_hunks_are_blank_context() -> None:
    text = "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n"
    (fp,) = parse_patch(text).files
    assert fp.hunks[0].lines == [(" ", "a\n"), (" ", "\n"), ("-", "b\n"), ("+", "c\n")]


def test_prose_around_the_diff_is_skipped() -> None:
    text = "Sure! Here it is:\n\n--- a/f\n+++ b/f\n@@\n-a\n+b\n\nThis renames a.\n"
    (fp,) = parse_patch(text).files
    assert fp.hunks[0].lines == [("-", "a\n"), ("+", "b\n")]


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("", 1, "file header"),
        ("just prose\nno diff here\n", 1, "file header"),
        ("@@ -1 +1 @@\n-a\n+b\n", 1, "file header before this hunk"),
        ("--- a/f\n+++ b/f\nnot a hunk\n", 3, "'@@' hunk header"),
        ("--- a/f\n+++ b/f\n@@ -1 +1 @@\nxyz\n", 4, "hunk lines"),
        ("diff --git a/f b/f\n--- a/f\nnope\n", 3, "'+++ '"),
    ],
)
def test_errors_name_the_line_and_what_was_expected(text: str, line: int, expected: str) -> None:
    with pytest.raises(DiffParseError) as exc:
        parse_patch(text)
    assert f"line {line}:" in str(exc.value)
    assert expected in str(exc.value)


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(
            [
                "--- a/f",
                "+++ b/f",
                "@@ -1,2 +1,2 @@",
                "@@",
                " a",
                "-b",
                "+c",
                "",
                "\\ No newline",
                "diff --git a/f b/f",
                "new file mode 100644",
                "rename from x",
                "junk",
                "-- ",
            ]
        ),
        max_size=30,
    )
)
def test_parser_never_crashes(lines: list[str]) -> None:
    try:
        patch = parse_patch("\n".join(lines) + "\n")
    except DiffParseError:
        return
    for fp in patch.files:
        assert fp.old_path is not None or fp.new_path is not None


def test_split_lines_only_splits_on_newline() -> None:
    assert split_lines("a\x0cb\u2028c\r\nd") == ["a\x0cb\u2028c\r\n", "d"]


def test_rendering_a_parsed_patch_keeps_wrong_counts_wrong() -> None:
    from bactrian.diffs import apply_to_files, render_patch

    text = "--- a/f\n+++ b/f\n@@ -1,1 +1,1 @@\n a\n-b\n+c\n"
    again = render_patch(parse_patch(text))
    assert "@@ -1,1 +1,1 @@" in again
    assert not apply_to_files({"f": "a\nb\n"}, again)[1].ok  # strict still refuses it
    assert apply_to_files({"f": "a\nb\n"}, again, lenient=True)[1].rungs() == {"recount": 1}
