"""The line matcher behind rendering: its opcodes rebuild the target, and it agrees with
difflib on where the hunks are."""

from __future__ import annotations

import difflib

from hypothesis import given, settings
from hypothesis import strategies as st

from bactrian.diffs.lcs import grouped_opcodes, opcodes

lines = st.lists(st.sampled_from(["a", "b", "c", "", "end", "let x", "let y"]), max_size=40)


@settings(max_examples=400)
@given(lines, lines)
def test_opcodes_rebuild_the_target(a: list[str], b: list[str]) -> None:
    out: list[str] = []
    i = j = 0
    for tag, i1, i2, j1, j2 in opcodes(a, b):
        assert (i1, j1) == (i, j)
        if tag == "equal":
            assert a[i1:i2] == b[j1:j2]
            out += a[i1:i2]
        else:
            out += b[j1:j2]
        i, j = i2, j2
    assert (i, j) == (len(a), len(b))
    assert out == b


@settings(max_examples=200)
@given(lines, lines, st.integers(0, 4))
def test_groups_cover_every_change_with_context(a: list[str], b: list[str], n: int) -> None:
    groups = grouped_opcodes(a, b, n)
    changed = [op for g in groups for op in g if op[0] != "equal"]
    assert changed == [op for op in opcodes(a, b) if op[0] != "equal"]
    assert bool(groups) == (a != b)
    for g in groups:
        for tag, i1, i2, _, _ in (g[0], g[-1]):
            if tag == "equal":
                assert i2 - i1 <= n


def test_long_files_with_many_changes_are_matched_well() -> None:
    a = [f"let v{i} = {i}" if i % 5 else "" for i in range(6000)]
    b = [x + " (* x *)" if i % 7 == 0 and x else x for i, x in enumerate(a)]
    changed = sum(i2 - i1 for tag, i1, i2, _, _ in opcodes(a, b) if tag != "equal")
    want = sum(1 for i, x in enumerate(a) if i % 7 == 0 and x)
    assert changed == want
    small_a, small_b = a[:300], b[:300]
    ours = [op for op in opcodes(small_a, small_b) if op[0] != "equal"]
    ref = difflib.SequenceMatcher(None, small_a, small_b, autojunk=False).get_opcodes()
    assert ours == [op for op in ref if op[0] != "equal"]
