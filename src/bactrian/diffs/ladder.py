"""Find where one hunk goes in a file: strictly, or leniently by a ladder of rungs tried in
order, the first that places the hunk being recorded.

    exact       the old lines sit exactly at the stated place (what a strict apply accepts)
    offset      they sit exactly somewhere else: the unique match, or one within 3 lines of the
                stated place whose rival is clearly farther
    recount     the header's counts were wrong or missing (bare ``@@``); the body was recounted
                and found exactly (uniquely, or clearly nearest to a stated line number)
    whitespace  found when whitespace-only differences (indentation, trailing blanks, CRLF)
                are ignored; context lines keep the file's own whitespace
    context     found when some hunk context lines are not in the file (extra lines) or some
                file lines are missing from the hunk's context (a dropped line)
    fuzzy       context lines drifted: similar (not equal) to the file's, above a threshold
                (the last two rungs' candidates compete on one score, see ``align``)

Every rung refuses to guess: when two places fit equally well the hunk fails as ambiguous.
Lines to remove must always be found (ignoring whitespace only); added lines must sit between
two context lines that are adjacent in the file, else the hunk fails.
"""

from __future__ import annotations

from bactrian.diffs.align import align_place
from bactrian.diffs.model import Hunk
from bactrian.diffs.placing import (
    DEFAULT_LADDER,
    FileIndex,
    HunkFailed,
    LadderConfig,
    Placement,
    adapt_eol,
    choose_position,
    eol_fix,
    eol_of,
    norm,
    similarity,
)

__all__ = [
    "DEFAULT_LADDER",
    "FileIndex",
    "HunkFailed",
    "LadderConfig",
    "Placement",
    "eol_fix",
    "norm",
    "place_hunk",
    "similarity",
]


def _lineno_list(positions: list[int]) -> str:
    shown = ", ".join(str(p + 1) for p in positions[:5])
    return shown + (", …" if len(positions) > 5 else "")


def _replace_aligned(hunk: Hunk, window: list[str]) -> list[str]:
    """New lines for a window aligned 1:1 with the hunk's old lines."""
    eol = eol_fix(list(zip(hunk.old_lines, window, strict=True)))
    out: list[str] = []
    k = 0
    for tag, text in hunk.lines:
        if tag == " ":
            out.append(window[k])
            k += 1
        elif tag == "-":
            k += 1
        else:
            out.append(adapt_eol(text, eol))
    return out


def place_hunk(
    lines: list[str],
    hunk: Hunk,
    expected: int | None,
    *,
    lenient: bool,
    floor: int = 0,
    config: LadderConfig = DEFAULT_LADDER,
    index: FileIndex | None = None,
) -> Placement:
    """Where ``hunk`` goes in ``lines`` and what replaces them. ``expected`` is the 0-based
    line where the hunk's old lines should start (None when the header has no numbers);
    ``floor`` is where the previous hunk ended. ``index`` (over ``lines``) makes the search
    cost the hunk's size rather than the file's; without one it is built when needed.
    Raises :class:`HunkFailed` with a reason."""
    old = hunk.old_lines
    header_ok = hunk.numbered and hunk.counts_ok
    stated = expected
    if expected is not None:
        expected = max(0, min(expected, len(lines)))
    if not old:
        return _place_insertion(lines, hunk, expected, lenient=lenient, header_ok=header_ok)
    if header_ok and expected is not None and lines[expected : expected + len(old)] == old:
        return Placement(expected, expected + len(old), hunk.new_lines, "exact")
    if not lenient:
        raise HunkFailed(_strict_reason(lines, hunk, expected))
    if index is None or index.lines is not lines:
        index = FileIndex(lines)
    placement = _lenient_place(index, hunk, expected, floor, config)
    _check_edges(lines, hunk, placement)
    if stated is not None:
        placement.offset = placement.start - stated
    return placement


def _check_edges(lines: list[str], hunk: Hunk, pl: Placement) -> None:
    """A header that counts more old lines than the body holds says context is missing
    somewhere; added lines at an edge of the hunk then have nothing holding them on that side
    (unless the hunk sits at that end of the file), so where they go is a guess."""
    if hunk.old_count is None or hunk.old_count <= len(hunk.old_lines):
        return
    first, last = hunk.lines[0][0], hunk.lines[-1][0]
    if (first == "+" and pl.start > 0) or (last == "+" and pl.end < len(lines)):
        raise HunkFailed(
            f"ambiguous: the @@ header counts {hunk.old_count} old lines but the hunk has "
            f"{len(hunk.old_lines)}, and its added lines at the hunk's edge have no context on "
            "that side; add the missing context lines"
        )


def _lenient_place(
    index: FileIndex, hunk: Hunk, expected: int | None, floor: int, config: LadderConfig
) -> Placement:
    lines = index.lines
    old = hunk.old_lines
    header_ok = hunk.numbered and hunk.counts_ok
    exact = index.find_all(old)
    if exact:
        pos = choose_position(exact, expected, floor)
        if pos is None:
            raise HunkFailed(
                f"ambiguous: the hunk's lines occur at lines {_lineno_list(exact)}; "
                "give line numbers or more context"
            )
        rung = "offset" if header_ok else "recount"
        off = pos - expected if expected is not None else 0
        return Placement(pos, pos + len(old), hunk.new_lines, rung, off)

    okeys = [norm(x) for x in old]
    ws = index.find_all(okeys, key=True)
    if ws:
        pos = choose_position(ws, expected, floor)
        if pos is None:
            raise HunkFailed(
                f"ambiguous: ignoring whitespace, the hunk's lines occur at lines "
                f"{_lineno_list(ws)}"
            )
        new = _replace_aligned(hunk, lines[pos : pos + len(old)])
        off = pos - expected if expected is not None else 0
        return Placement(pos, pos + len(old), new, "whitespace", off)

    return align_place(index, hunk, okeys, expected, config)


def _place_insertion(
    lines: list[str], hunk: Hunk, expected: int | None, *, lenient: bool, header_ok: bool
) -> Placement:
    if not (header_ok or lenient):
        raise HunkFailed(_strict_reason(lines, hunk, expected))
    eol = eol_of(lines)
    new = hunk.new_lines if header_ok else [adapt_eol(t, eol) for t in hunk.new_lines]
    if not lines:
        return Placement(0, 0, new, "exact" if header_ok else "recount")
    if expected is not None and (header_ok or lenient):
        return Placement(expected, expected, new, "exact" if header_ok else "recount")
    raise HunkFailed(
        "the hunk has no context lines and no line numbers, so its place cannot be found"
    )


def _strict_reason(lines: list[str], hunk: Hunk, expected: int | None) -> str:
    if not hunk.numbered:
        return "the hunk header has no line numbers (bare @@); apply leniently"
    if not hunk.counts_ok:
        return "the counts in the @@ header do not match the hunk's body; apply leniently"
    assert expected is not None
    old = hunk.old_lines
    for k, want in enumerate(old):
        pos = expected + k
        if pos >= len(lines):
            return f"the file ends at line {len(lines)} before the hunk's context does"
        if lines[pos] != want:
            eol = _eol_mismatch(lines[pos], want)
            if eol:
                return f"line endings differ at line {pos + 1} ({eol}); apply leniently"
            return (
                f"context differs at line {pos + 1}: expected {want.rstrip()!r}, "
                f"found {lines[pos].rstrip()!r}"
            )
    return "context does not match"


def _ending(line: str) -> str:
    if line.endswith("\r\n"):
        return "CRLF"
    if line.endswith("\n"):
        return "LF"
    if line.endswith("\r"):
        return "CR"
    return "no newline"


def _eol_mismatch(file_line: str, hunk_line: str) -> str | None:
    """``"CRLF in file, LF in patch"`` when two lines differ only in their line ending."""
    if file_line.rstrip("\r\n") != hunk_line.rstrip("\r\n"):
        return None
    f, h = _ending(file_line), _ending(hunk_line)
    return f"{f} in file, {h} in patch" if f != h else None
