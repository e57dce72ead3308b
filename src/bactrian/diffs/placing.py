"""What the lenient ladder (:mod:`bactrian.diffs.ladder`) and the aligner of its last rungs
(:mod:`bactrian.diffs.align`) share, one layer below both: the ladder's settings, a placement,
line normalisation, line ends, the file index hunks are placed in, choosing among candidate
positions, line similarity."""

from __future__ import annotations

import difflib
from bisect import bisect_right
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
    if eol is None or not text.endswith("\n"):
        return text
    body = text[:-2] if text.endswith("\r\n") else text[:-1]
    return body + eol


class FileIndex:
    """One file's lines while its hunks are applied, with where each line (exact, and
    whitespace-normalized) occurs, so that placing a hunk costs about its own size instead of
    a scan of the whole file (a file with thousands of bare ``@@`` hunks otherwise takes
    quadratic time).

    The index is built once over the lines as they were (``_base``); each splice is recorded,
    and as long as splices come in file order (each at or after the end of the previous one,
    as hunks of a diff do) a line's current position follows from its base position by one
    bisection, and lines a splice inserted never move again. A splice out of order rebuilds
    the index from the current lines (correct, only slower). ``lines`` and ``keys`` are always
    the current file, for direct reading; change them only through :meth:`splice`."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.keys = [norm(x) for x in lines]
        self._rebuild()

    def _rebuild(self) -> None:
        self._by_line: dict[str, list[int]] = {}
        self._by_key: dict[str, list[int]] = {}
        for p, (line, key) in enumerate(zip(self.lines, self.keys, strict=True)):
            self._by_line.setdefault(line, []).append(p)
            self._by_key.setdefault(key, []).append(p)
        self._ins_line: dict[str, list[int]] = {}
        self._ins_key: dict[str, list[int]] = {}
        self._b_start: list[int] = []  # each splice's range in base positions ...
        self._b_end: list[int] = []
        self._delta: list[int] = []  # ... and the total shift of base lines after it
        self._cur_end = 0  # current position where the last splice's new lines end

    def splice(self, start: int, end: int, new: list[str]) -> None:
        """Replace current lines ``[start, end)`` with ``new``."""
        new_keys = [norm(x) for x in new]
        in_order = start >= self._cur_end
        self.lines[start:end] = new
        self.keys[start:end] = new_keys
        if not in_order:
            self._rebuild()
            self._cur_end = start + len(new)
            return
        shift = self._delta[-1] if self._delta else 0
        # every current line at or after the last splice's end is a base line shifted by it
        self._b_start.append(start - shift)
        self._b_end.append(end - shift)
        self._delta.append(shift + len(new) - (end - start))
        for k, (line, key) in enumerate(zip(new, new_keys, strict=True)):
            self._ins_line.setdefault(line, []).append(start + k)
            self._ins_key.setdefault(key, []).append(start + k)
        self._cur_end = start + len(new)

    def _count(self, text: str, *, key: bool) -> int:
        """An upper bound of ``text``'s occurrences (lines since replaced included)."""
        base, ins = (self._by_key, self._ins_key) if key else (self._by_line, self._ins_line)
        return len(base.get(text, ())) + len(ins.get(text, ()))

    def occurrences(self, text: str, *, key: bool = False) -> list[int]:
        """Current positions (ascending) of the lines equal to ``text`` (of the normalized
        lines equal to it with ``key``)."""
        base, ins = (self._by_key, self._ins_key) if key else (self._by_line, self._ins_line)
        found = base.get(text, [])
        if not self._b_start:
            return list(found)
        out: list[int] = []
        b_start, b_end, delta = self._b_start, self._b_end, self._delta
        for b in found:
            j = bisect_right(b_start, b) - 1
            if j < 0:
                out.append(b)
            elif b >= b_end[j]:  # after splice j (or after a pure insertion at b)
                out.append(b + delta[j])
            # else: replaced by splice j
        extra = ins.get(text)
        if extra:
            out = sorted(out + extra)
        return out

    def find_all(self, needle: list[str], *, key: bool = False) -> list[int]:
        """Where ``needle`` occurs in the current lines (keys with ``key``), ascending; the
        same as a scan of the whole file, found from the needle's rarest line."""
        n = len(needle)
        if n == 0:
            return []
        hay = self.keys if key else self.lines
        i = min(range(n), key=lambda k: self._count(needle[k], key=key))
        out = []
        for p in self.occurrences(needle[i], key=key):
            c = p - i
            if 0 <= c <= len(hay) - n and hay[c : c + n] == needle:
                out.append(c)
        return out


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


def similarity(a: str, b: str, at_least: float = 0.0) -> float:
    """How alike two (normalized) lines are, 0..1. A line extended or cut at its end (a
    comment appended, say) counts as at least 0.75 alike. A pair that cannot reach
    ``at_least`` gets a cheap upper bound below it instead of the exact ratio."""
    short, long_ = sorted((a, b), key=len)
    prefix = len(short) >= 4 and long_.startswith(short)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if not prefix and at_least > 0.0:
        bound = matcher.real_quick_ratio()
        if bound < at_least:
            return bound
        bound = matcher.quick_ratio()
        if bound < at_least:
            return bound
    ratio = matcher.ratio()
    return max(ratio, 0.75) if prefix else ratio
