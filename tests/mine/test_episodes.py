from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bactrian.mine.episodes import EpisodeBounds, Point, find_episodes
from bactrian.types import BuildState

G, R, U = BuildState.GREEN, BuildState.RED, BuildState.UNKNOWN


def pts(states: str, step: float = 20.0) -> list[Point]:
    m = {"g": G, "r": R, "u": U}
    return [Point(m[c], i * step) for i, c in enumerate(states)]


def kinds(states: str, **kw) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    return [(e.kind, e.base, e.end) for e in find_episodes(pts(states), **kw)]


def test_valleys_give_a_fix_and_a_change() -> None:
    assert kinds("ggrg") == [("fix", 2, 3), ("change", 1, 3)]
    assert kinds("grrrg") == [("fix", 3, 4), ("change", 0, 4)]


def test_timeline_starting_red_gives_only_the_fix() -> None:
    assert kinds("rrg") == [("fix", 1, 2)]


def test_unknown_breaks_episodes() -> None:
    assert kinds("grurg") == [("fix", 3, 4)]  # no green right before the red stretch
    assert kinds("grrug") == []
    assert kinds("grr") == []


def test_policies_and_same_diff() -> None:
    assert kinds("grg", policy="fix") == [("fix", 1, 2)]
    assert kinds("grg", policy="change") == [("change", 0, 2)]
    assert kinds("grg", same_diff=lambda a, b, c: True) == [("fix", 1, 2)]


def test_duration_bounds() -> None:
    skipped: dict[str, int] = {}
    eps = find_episodes(
        pts("grrrrg", step=600.0), EpisodeBounds(max_fix_s=1800, max_change_s=7200), skipped=skipped
    )
    assert [(e.kind, e.duration_s) for e in eps] == [("change", 3000.0)]
    assert skipped == {"fix_duration": 1}


@given(st.text(alphabet="gru", max_size=40))
def test_episodes_are_well_formed(states: str) -> None:
    points = pts(states)
    for e in find_episodes(points):
        assert points[e.end].state is G
        assert all(p.state is R for p in points[e.first_red : e.end])
        if e.kind == "fix":
            assert e.base == e.end - 1
        else:
            assert points[e.base].state is G and e.base == e.first_red - 1
