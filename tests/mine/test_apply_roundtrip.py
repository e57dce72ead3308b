from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bactrian.mine.filemap import apply_to_map
from bactrian.mine.parts import split_change
from bactrian.mine.textdiff import diff_stats, render

lines = st.lists(
    st.sampled_from(["let a = 1", "let b = a", "", "(* c *)", "x", "y z"]), max_size=30
)


def text(ls: list[str], eol: bool) -> bytes:
    return ("\n".join(ls) + ("\n" if eol and ls else "")).encode()


files = st.dictionaries(
    st.sampled_from(["a.ml", "a.mli", "lib/b.ml", "test/test_a.ml"]),
    st.tuples(lines, st.booleans()).map(lambda t: text(*t)),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(files, files)
def test_render_then_apply_reconstructs(old: dict[str, bytes], new: dict[str, bytes]) -> None:
    assert apply_to_map(old, render(old, new)) == {k: v for k, v in new.items()}


@settings(max_examples=100, deadline=None)
@given(files, files, st.integers(min_value=1, max_value=8))
def test_split_parts_apply_in_order(
    old: dict[str, bytes], new: dict[str, bytes], limit: int
) -> None:
    state = dict(old)
    parts = split_change(old, new, limit, 5)
    for pre, part in parts:
        assert part, "an empty part"
        assert apply_to_map(old, pre) == state
        state = apply_to_map(state, part)
    assert state == new
    assert bool(parts) == bool(render(old, new))
    if len(parts) > 1:  # split only because the whole was over the limit
        assert diff_stats(render(old, new))["changed"] > limit


@settings(max_examples=100, deadline=None)
@given(files, files)
def test_mined_diffs_apply_strictly_with_bactrian_diffs(
    old: dict[str, bytes], new: dict[str, bytes]
) -> None:
    """The CES applies gold diffs with ``bactrian.diffs``: what the miner renders must apply
    there strictly, too."""
    from bactrian.diffs import apply_to_files

    diff = render(old, new)
    assume(diff)
    result_files, result = apply_to_files(old, diff)
    assert result_files == new, result
