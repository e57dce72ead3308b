"""What the lenient ladder (:mod:`bactrian.diffs.ladder`) and the aligner of its last rungs
(:mod:`bactrian.diffs.align`) share, one layer below both: the ladder's settings, a placement,
line normalisation, line ends, choosing among candidate positions, line similarity."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class LadderConfig:
    fuzzy_threshold: float = 0.75  # similarity of the hunk's old lines to the file's
    fuzzy_margin: float = 0.1  # best place must beat the next different one by this much
    line_similarity: float = 0.6  # a drifted context line must be at least this similar
    max_gap: int = 3  # file lines missing from the hunk's context, in all
    max_unmatched: int = 3  # hunk context lines not found in the file (context rung)


DEFAULT_LADDER = LadderConfig()


class HunkFailed(Exception):
    """A hunk could not be placed; the message says why."""


@dataclass
class Placement:
    start: int  # replace file lines [start, end) ...
    end: int
    lines: list[str]  # ... with these
    rung: str
    offset: int = 0


def norm(line: str) -> str:
    return " ".join(line.split())


def eol_of(lines: list[str]) -> str | None:
    for line in lines:
        if line.endswith("\r\n"):
            return "\r\n"
        if line.endswith("\n"):
            return "\n"
    return None


def eol_fix(pairs: list[tuple[str, str]]) -> str | None:
    """The line end added lines should take, from (hunk line, file line) pairs that matched:
    ``"\r\n"`` when the diff lost the file's CRs, ``"\n"`` when it added some, else None."""
    for hunk_line, file_line in pairs:
        h_crlf, f_crlf = hunk_line.endswith("\r\n"), file_line.endswith("\r\n")
        if not (hunk_line.endswith("\n") and file_line.endswith("\n")) or h_crlf == f_crlf:
            continue
        return "\r\n" if f_crlf else "\n"
    return None


def adapt_eol(text: str, eol: str | None) -> str:
    """``text`` with its line end replaced by ``eol`` (unchanged when None or no line end)."""
    if eol is None or not text.endswith("\n"):
        return text
    body = text[:-2] if text.endswith("\r\n") else text[:-1]
    return body + eol


def choose_position(positions: list[int], expected: int | None, floor: int) -> int | None:
    """The one position to use, or None when the choice is ambiguous."""
    if len(positions) == 1:
        return positions[0]
    if expected is None:
        return None
    after = [p for p in positions if p >= floor] or positions
    if len(after) == 1:
        return after[0]
    dists = sorted((abs(p - expected), p) for p in after)
    (d1, p1), (d2, _) = dists[0], dists[1]
    # the stated line (shifted by what earlier hunks showed) must be about right: with the
    # same lines in two places, wrong line numbers would otherwise pick the wrong one
    if d1 <= 3 and d2 >= 2 * d1 + 2:
        return p1
    return None


def similarity(a: str, b: str) -> float:
    """How alike two (normalized) lines are, 0..1. A line extended or cut at its end (a
    comment appended, say) counts as at least 0.75 alike."""
    ratio = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    short, long_ = sorted((a, b), key=len)
    if len(short) >= 4 and long_.startswith(short):
        return max(ratio, 0.75)
    return ratio
