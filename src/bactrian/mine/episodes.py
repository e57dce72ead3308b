"""Episode detection: a pure function over a build-state timeline.

A timeline is a sequence of points with ``state`` (:class:`BuildState`) and ``time`` (epoch
seconds), e.g. snapshots. Episodes are found in the red valleys between greens:

- **fix** (red → green): base = the last red point, end = the first green after it; the prompt
  comes from the diagnostics at the base. Emitted for every red stretch that ends green, also
  when the timeline starts red.
- **change** (green → red → green): base = the green before the red stretch, end = the green
  after it; the target is the whole diff between the two greens. With ``policy="both"`` a
  valley yields a change as well as its fix when the change's diff differs from the fix's
  (callers pass ``same_diff``); with ``policy="fix"`` only fixes, ``policy="change"`` only
  changes.

An ``unknown`` state breaks episodes: no episode spans it. Duration bounds (seconds) drop
episodes whose red stretch (fix) or whole span (change) is longer than a focused edit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bactrian.types import BuildState


class TimelinePoint(Protocol):
    @property
    def state(self) -> BuildState: ...

    @property
    def time(self) -> float: ...


@dataclass(frozen=True)
class Point:
    """A plain timeline point (tests, benchmarks)."""

    state: BuildState
    time: float


@dataclass(frozen=True)
class Episode:
    kind: str  # "fix" | "change"
    base: int  # index of the point the diff applies to (last red / first green)
    end: int  # index of the first green after the red stretch
    first_red: int  # index of the first red point of the stretch
    duration_s: float


@dataclass
class EpisodeBounds:
    min_s: float = 0.0
    max_fix_s: float = 3600.0
    max_change_s: float = 4 * 3600.0


def find_episodes(
    points: Sequence[TimelinePoint],
    bounds: EpisodeBounds | None = None,
    *,
    policy: str = "both",
    same_diff: Callable[[int, int, int], bool] | None = None,
    skipped: dict[str, int] | None = None,
) -> list[Episode]:
    """Episodes in ``points`` ordered by end, fix before change for the same valley.

    ``same_diff(green_before, last_red, green_after)`` says whether the whole change equals the
    fix (then only the fix is kept); ``skipped`` counts episodes dropped by duration bounds.
    """
    if policy not in ("both", "fix", "change"):
        raise ValueError(f"episode policy {policy!r} is not one of both, fix, change")
    bounds = bounds or EpisodeBounds()
    skipped = skipped if skipped is not None else {}
    out: list[Episode] = []
    i, n = 0, len(points)
    while i < n:
        if points[i].state is not BuildState.RED:
            i += 1
            continue
        start = i
        while i < n and points[i].state is BuildState.RED:
            i += 1
        if i >= n or points[i].state is not BuildState.GREEN:
            continue  # ends red or with an unknown: no episode
        last_red, end = i - 1, i
        before = start - 1 if start > 0 and points[start - 1].state is BuildState.GREEN else None
        fix_s = points[end].time - points[start].time
        want_fix = policy in ("both", "fix")
        want_change = policy in ("both", "change") and before is not None
        if want_change and policy == "both" and same_diff is not None and before is not None:
            want_change = not same_diff(before, last_red, end)
        if want_fix:
            if not bounds.min_s <= fix_s <= bounds.max_fix_s:
                skipped["fix_duration"] = skipped.get("fix_duration", 0) + 1
            else:
                out.append(Episode("fix", last_red, end, start, fix_s))
        if want_change and before is not None:
            change_s = points[end].time - points[before].time
            if not bounds.min_s <= change_s <= bounds.max_change_s:
                skipped["change_duration"] = skipped.get("change_duration", 0) + 1
            else:
                out.append(Episode("change", before, end, start, change_s))
    return out
