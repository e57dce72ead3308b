"""``FileIndex`` (the lenient ladder's occurrence index) answers exactly what a scan of the
whole current file would, through in-order splices, out-of-order ones (rebuild) and hunks
that match lines an earlier splice inserted."""

from __future__ import annotations

import random

import pytest

from bactrian.diffs import apply_to_files
from bactrian.diffs.ladder import FileIndex, norm


def _scan(hay: list[str], needle: list[str]) -> list[int]:
    n = len(needle)
    return [p for p in range(len(hay) - n + 1) if hay[p : p + n] == needle]


@pytest.mark.parametrize("seed", range(8))
def test_index_matches_a_full_scan_through_random_splices(seed: int) -> None:
    rng = random.Random(seed)
    words = ["a\n", "b\n", "  a\n", "c\n", "\n", "a \n"]
    lines = [rng.choice(words) for _ in range(60)]
    index = FileIndex(lines)
    cursor = 0
    for _ in range(40):
        if rng.random() < 0.8 and cursor < len(index.lines):  # in file order, like hunks
            start = rng.randint(cursor, len(index.lines))
        else:  # anywhere: the index rebuilds
            start = rng.randint(0, len(index.lines))
        end = min(len(index.lines), start + rng.randint(0, 3))
        new = [rng.choice(words) for _ in range(rng.randint(0, 4))]
        index.splice(start, end, new)
        cursor = start + len(new)
        assert index.keys == [norm(x) for x in index.lines]
        for w in words:
            assert index.occurrences(w) == [p for p, x in enumerate(index.lines) if x == w]
            k = norm(w)
            assert index.occurrences(k, key=True) == [p for p, x in enumerate(index.keys) if x == k]
        for n in (1, 2, 3):
            at = rng.randint(0, max(0, len(index.lines) - n))
            needle = index.lines[at : at + n]
            assert index.find_all(needle) == _scan(index.lines, needle)
            knee = index.keys[at : at + n]
            assert index.find_all(knee, key=True) == _scan(index.keys, knee)


def test_a_hunk_matching_lines_an_earlier_hunk_added_is_still_ambiguous() -> None:
    """Hunk 1 adds a copy of the lines hunk 2 names; with bare @@ hunk 2 is ambiguous, as a
    scan of the current file says."""
    text = "x\ny\nz\nw\n"
    diff = "--- a/f\n+++ b/f\n@@\n x\n+z\n+w\n y\n@@\n z\n-w\n+W\n"
    _, res = apply_to_files({"f": text}, diff, lenient=True)
    assert not res.ok
    assert "ambiguous" in res.summary()
