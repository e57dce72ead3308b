"""The ``context`` and ``fuzzy`` rungs: align a hunk's old lines with the file near a candidate
start.

Candidate starts come from anchors (hunk lines found in the file, ignoring whitespace). Around
each, a banded dynamic-programming alignment maps hunk lines to file lines: equal lines score,
skipped lines cost, and in fuzzy mode a drifted context line may pair with a similar file line.
An alignment is valid when every line to remove is found, the added lines sit right next to old
lines that were found (and, between two of them, those are adjacent in the file), and the gaps
stay small. Alignments in non-overlapping regions compete: the best must be clearly better than
the best elsewhere (or the hunk's line numbers must clearly point at it), else the hunk fails as
ambiguous.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bactrian.diffs.model import Hunk
from bactrian.diffs.placing import (
    FileIndex,
    HunkFailed,
    LadderConfig,
    Placement,
    adapt_eol,
    choose_position,
    eol_fix,
    similarity,
)

_MAX_STARTS = 60


@dataclass
class _Cand:
    start: int
    end: int
    lines: list[str]
    quality: tuple[float, ...]
    matched: int
    score: float
    rung: str


def _candidate_starts(index: FileIndex, okeys: list[str]) -> list[int]:
    occurrences = {k: index.occurrences(k, key=True) for k in set(okeys) if k}
    votes: Counter[int] = Counter()
    for i, k in enumerate(okeys):
        occ = occurrences[k] if k else []
        if len(occ) > 200:
            continue
        for p in occ:
            votes[p - i] += 1
    return [s for s, _ in votes.most_common(_MAX_STARTS)]


def _align(
    keys: list[str],
    okeys: list[str],
    removable: list[bool],
    s: int,
    late: bool,
    config: LadderConfig,
    sim_cache: dict[tuple[int, int], float],
) -> tuple[list[int | None], list[float]]:
    """Align the hunk's old lines with the file around start ``s`` (banded dynamic
    programming: equal lines score 2, a drifted context line ``2 * similarity - 0.5``, each
    skipped line -1; file lines before and after the hunk are free). Between equally good
    alignments (repeated blank lines, say) ``late`` picks the one matching later file lines.
    Returns, per old line, the file line it maps to (or None) and how similar they are."""
    g = config.max_gap + config.max_unmatched
    n = len(okeys)
    lo = max(0, s - g)
    hi = min(len(keys), s + n + g)
    m = hi - lo
    neg = float("-inf")
    score = [[neg] * (m + 1) for _ in range(n + 1)]
    back = [[0] * (m + 1) for _ in range(n + 1)]
    for j in range(m + 1):
        score[0][j] = 0.0
        back[0][j] = 2
    for i in range(1, n + 1):
        centre = i - 1 + (s - lo)
        jlo = max(0, centre - g)
        jhi = min(m, centre + g + 1)
        if jlo == 0:
            score[i][0] = score[i - 1][0] - 1
            back[i][0] = 1
        for j in range(max(1, jlo), jhi + 1):
            best, how = score[i - 1][j] - 1, 1
            left = score[i][j - 1] - (0 if i == n else 1)
            if left > best:
                best, how = left, 2
            a, b = okeys[i - 1], keys[lo + j - 1]
            pair = None
            if a == b:
                pair = 2.0
            elif not removable[i - 1] and a and b:
                key = (i - 1, lo + j - 1)
                if key not in sim_cache:
                    sim_cache[key] = similarity(a, b, config.line_similarity)
                if sim_cache[key] >= config.line_similarity:
                    pair = 2.0 * sim_cache[key] - 0.5
            diag = score[i - 1][j - 1] + pair if pair is not None else neg
            if diag > best or (late and diag == best and diag > neg):
                best, how = diag, 0
            score[i][j] = best
            back[i][j] = how
    mapping: list[int | None] = [None] * n
    sims = [0.0] * n
    i, j = n, m
    while i > 0 and j >= 0:
        how = back[i][j]
        if how == 0:
            mapping[i - 1] = lo + j - 1
            a, b = okeys[i - 1], keys[lo + j - 1]
            sims[i - 1] = 1.0 if a == b else sim_cache.get((i - 1, lo + j - 1), 0.0)
            i, j = i - 1, j - 1
        elif how == 1:
            i -= 1
        else:
            j -= 1
    return mapping, sims


def _evaluate(
    lines: list[str],
    keys: list[str],
    hunk: Hunk,
    okeys: list[str],
    s: int,
    late: bool,
    config: LadderConfig,
    sim_cache: dict[tuple[int, int], float],
) -> _Cand | None:
    L = len(okeys)
    removable = [tag == "-" for tag, _ in hunk.lines if tag != "+"]
    mapping, sims = _align(keys, okeys, removable, s, late, config, sim_cache)
    for i, rem in enumerate(removable):
        if rem and sims[i] != 1.0:
            return None  # a line to remove is not in the file
    mapped = [m for m in mapping if m is not None]
    if not mapped:
        return None
    start, end = mapped[0], mapped[-1] + 1
    gap = (end - start) - len(mapped)
    unmatched = L - len(mapped)
    matched = sum(1 for x in sims if x == 1.0)
    if gap > config.max_gap:
        return None
    # a hunk line facing a different file line is drift (fuzzy); the context rung takes only
    # lines missing on one side
    drift = matched < len(mapped)
    prev_i: int | None = None
    for i, mi in enumerate(mapping):
        if mi is None:
            continue
        if prev_i is not None:
            pm = mapping[prev_i]
            assert pm is not None
            drift = drift or (i - prev_i > 1 and mi - pm > 1)
        prev_i = i
    context_ok = (
        not drift and unmatched <= config.max_unmatched and matched * 2 >= L and matched >= 2
    )
    score = sum(sims) / L
    if not context_ok and score < config.fuzzy_threshold:
        return None
    if not _anchored(hunk, mapping):
        return None
    out = _build(lines, hunk, mapping, start)
    quality = (score, -gap, -unmatched)
    return _Cand(start, end, out, quality, matched, score, "context" if context_ok else "fuzzy")


def _anchored(hunk: Hunk, mapping: list[int | None]) -> bool:
    """Added lines must sit right after / right before old lines found in the file, and when
    they have both, those two must be adjacent in the file (else where they go is a guess)."""
    L = len(mapping)
    oi = 0
    run_starts: list[int] = []  # old-line index each run of added lines sits before
    in_run = False
    for tag, _ in hunk.lines:
        if tag == "+":
            if not in_run:
                run_starts.append(oi)
                in_run = True
            continue
        in_run = False
        oi += 1
    for at in run_starts:
        before = mapping[at - 1] if at > 0 else None
        after = mapping[at] if at < L else None
        if (at > 0 and before is None) or (at < L and after is None):
            return False
        if before is not None and after is not None and after != before + 1:
            return False
    return True


def _build(lines: list[str], hunk: Hunk, mapping: list[int | None], start: int) -> list[str]:
    """The file lines from ``start`` to the last mapped one, with the hunk applied: context
    lines as the file has them, file lines the hunk skipped kept, added lines inserted."""
    old_lines = hunk.old_lines
    eol = eol_fix([(old_lines[i], lines[m]) for i, m in enumerate(mapping) if m is not None])
    out: list[str] = []
    ptr = start
    oi = 0
    for tag, text in hunk.lines:
        if tag == "+":
            out.append(adapt_eol(text, eol))
            continue
        m = mapping[oi]
        oi += 1
        if m is None:
            continue
        out += lines[ptr:m]
        if tag == " ":
            out.append(lines[m])
        ptr = m + 1
    return out


def _select(cands: list[_Cand], config: LadderConfig, expected: int | None) -> _Cand | str:
    """The winning candidate, or a reason why none wins. Rivals in other regions that fit
    about as well make the hunk ambiguous, unless its line numbers clearly point at one."""
    best_by_result: dict[tuple[int, int, tuple[str, ...]], _Cand] = {}
    for c in cands:
        key = (c.start, c.end, tuple(c.lines))
        if key not in best_by_result or c.quality > best_by_result[key].quality:
            best_by_result[key] = c
    ranked = sorted(best_by_result.values(), key=lambda c: c.quality, reverse=True)
    best = ranked[0]
    contenders = [best]
    for other in ranked[1:]:
        if other.start < best.end and best.start < other.end:
            if other.quality == best.quality:
                return f"ambiguous: two alignments near line {best.start + 1} fit equally well"
            continue
        close = best.score - other.score < config.fuzzy_margin
        if close and not any(other.start < c.end and c.start < other.end for c in contenders):
            contenders.append(other)
    if len(contenders) == 1:
        return best
    if expected is not None:
        pos = choose_position([c.start for c in contenders], expected, 0)
        if pos is not None:
            return next(c for c in contenders if c.start == pos)
    where = ", ".join(str(c.start + 1) for c in sorted(contenders, key=lambda c: c.start)[:5])
    return f"ambiguous: the hunk fits about equally well at lines {where}"


def align_place(
    index: FileIndex,
    hunk: Hunk,
    okeys: list[str],
    expected: int | None,
    config: LadderConfig,
) -> Placement:
    lines, keys = index.lines, index.keys
    starts = _candidate_starts(index, okeys)
    if not starts:
        raise HunkFailed("none of the hunk's lines occur in the file")
    sim_cache: dict[tuple[int, int], float] = {}
    cands = []
    for s in starts:
        for late in (False, True):
            c = _evaluate(lines, keys, hunk, okeys, s, late, config, sim_cache)
            if c is not None:
                cands.append(c)
    if cands:
        chosen = _select(cands, config, expected)
        if isinstance(chosen, str):
            raise HunkFailed(chosen)
        off = chosen.start - expected if expected is not None else 0
        return Placement(chosen.start, chosen.end, chosen.lines, chosen.rung, off)
    raise HunkFailed(
        "no place in the file matches the hunk's context closely enough "
        "(a line to remove may be missing, or the file changed too much)"
    )
