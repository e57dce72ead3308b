"""Line matching for rendering: patience diff (anchors on lines unique to both sides, as
``git diff --patience``), falling back to :class:`difflib.SequenceMatcher` inside the gaps.

``difflib`` alone is quadratic on long files with many changes and repeated lines (a 5,000
line file with a change every 7 lines takes seconds); anchoring on unique lines first keeps
the gaps small, and the output reads the way people expect (functions stay aligned).
"""

from __future__ import annotations

import difflib
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence

Opcode = tuple[str, int, int, int, int]

_SM_CELLS = 250_000  # gaps larger than this use difflib's autojunk heuristic


def _lis(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Longest run of ``pairs`` (sorted by first item) increasing in the second item."""
    tails: list[int] = []
    tails_idx: list[int] = []
    prev: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pos = bisect_left(tails, j)
        if pos == len(tails):
            tails.append(j)
            tails_idx.append(k)
        else:
            tails[pos] = j
            tails_idx[pos] = k
        prev[k] = tails_idx[pos - 1] if pos else -1
    out = []
    k = tails_idx[-1] if tails_idx else -1
    while k != -1:
        out.append(pairs[k])
        k = prev[k]
    return out[::-1]


def _blocks(
    a: Sequence[str], b: Sequence[str], alo: int, ahi: int, blo: int, bhi: int
) -> list[tuple[int, int]]:
    """Matched (i, j) line pairs between a[alo:ahi] and b[blo:bhi], in order."""
    head: list[tuple[int, int]] = []
    while alo < ahi and blo < bhi and a[alo] == b[blo]:
        head.append((alo, blo))
        alo += 1
        blo += 1
    tail: list[tuple[int, int]] = []
    while alo < ahi and blo < bhi and a[ahi - 1] == b[bhi - 1]:
        ahi -= 1
        bhi -= 1
        tail.append((ahi, bhi))
    tail.reverse()
    if alo == ahi or blo == bhi:
        return head + tail
    ca = Counter(a[alo:ahi])
    cb = Counter(b[blo:bhi])
    where_b = {b[j]: j for j in range(blo, bhi) if cb[b[j]] == 1}
    pairs = [(i, where_b[a[i]]) for i in range(alo, ahi) if ca[a[i]] == 1 and a[i] in where_b]
    mid: list[tuple[int, int]] = []
    if pairs:
        anchors = _lis(pairs)
        pi, pj = alo, blo
        for i, j in anchors:
            mid += _blocks(a, b, pi, i, pj, j)
            mid.append((i, j))
            pi, pj = i + 1, j + 1
        mid += _blocks(a, b, pi, ahi, pj, bhi)
    else:
        big = (ahi - alo) * (bhi - blo) > _SM_CELLS
        sm = difflib.SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=big)
        for i, j, size in sm.get_matching_blocks():
            mid += [(alo + i + t, blo + j + t) for t in range(size)]
    return head + mid + tail


def opcodes(a: Sequence[str], b: Sequence[str]) -> list[Opcode]:
    """Like ``SequenceMatcher.get_opcodes()`` for lines ``a`` → ``b``."""
    out: list[Opcode] = []
    i = j = 0
    for mi, mj in [*_blocks(a, b, 0, len(a), 0, len(b)), (len(a), len(b))]:
        if i < mi or j < mj:
            tag = "replace" if i < mi and j < mj else ("delete" if i < mi else "insert")
            out.append((tag, i, mi, j, mj))
        if mi < len(a) or mj < len(b):
            if out and out[-1][0] == "equal":
                t, i1, _, j1, _ = out[-1]
                out[-1] = (t, i1, mi + 1, j1, mj + 1)
            else:
                out.append(("equal", mi, mi + 1, mj, mj + 1))
        i, j = mi + 1, mj + 1
    return out


def grouped_opcodes(a: Sequence[str], b: Sequence[str], n: int = 3) -> list[list[Opcode]]:
    """Hunks of opcodes with up to ``n`` lines of context (``get_grouped_opcodes``)."""
    codes = opcodes(a, b)
    if not codes:
        codes = [("equal", 0, 1, 0, 1)]
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = (tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2)
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = (tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n))
    nn = n + n
    groups: list[list[Opcode]] = []
    group: list[Opcode] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > nn:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            groups.append(group)
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        groups.append(group)
    return groups
