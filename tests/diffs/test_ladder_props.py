"""Properties of the lenient ladder on damaged diffs of random edits: it either reproduces the
target exactly or refuses; it never applies to the wrong place."""

from __future__ import annotations

import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bactrian.diffs import apply_to_files, parse_patch, render_diff, render_patch
from tests.diffs.strategies import tree_and_edit


def _bytes(files: dict[str, str]) -> dict[str, bytes]:
    return {p: t.encode() for p, t in files.items()}


@settings(max_examples=300, deadline=None)
@given(tree_and_edit(), st.sampled_from(["bare", "indent", "trailing"]))
def test_damaged_diffs_apply_exactly_or_not_at_all(
    trees: tuple[dict[str, str], dict[str, str]], damage: str
) -> None:
    old, new = trees
    text = render_diff(old, new)
    assume(text)
    patch = parse_patch(text)
    for fp in patch.files:
        if fp.is_new:
            continue
        for h in fp.hunks:
            if damage == "bare":
                h.old_start = h.old_count = h.new_start = h.new_count = None
            else:
                h.lines = [
                    (tag, ("  " + t if damage == "indent" else re.sub(r"(\r?\n)$", r" \1", t)))
                    if tag != "+"
                    else (tag, t)
                    for tag, t in h.lines
                ]
    out, result = apply_to_files(old, render_patch(patch), lenient=True)
    if result.ok:
        assert out == _bytes(new), result.to_dict()
    else:
        assert out == _bytes(old)
        assert all(
            h.error for f in result.files if f.status == "failed" for h in f.hunks if h.rung is None
        )


@settings(max_examples=100, deadline=None)
@given(st.integers(5, 40), st.integers(-20, 20))
def test_unique_context_is_found_whatever_the_line_numbers(n: int, shift: int) -> None:
    old = "".join(f"let v{i} = {i}\n" for i in range(n))
    new = old.replace(f"let v{n // 2} = {n // 2}\n", "let changed = 0\n")
    patch = parse_patch(render_diff({"m.ml": old}, {"m.ml": new}))
    h = patch.files[0].hunks[0]
    assert h.old_start is not None and h.new_start is not None
    stated = h.old_start
    h.old_start = max(1, h.old_start + shift)
    h.new_start = max(1, h.new_start + shift)
    out, result = apply_to_files({"m.ml": old}, patch, lenient=True)
    assert result.ok and out["m.ml"] == new.encode()
    assert result.rungs() == ({"exact": 1} if h.old_start == stated else {"offset": 1})
    assert result.files[0].hunks[0].offset == stated - h.old_start
