from __future__ import annotations

from bactrian.mine.filemap import apply_to_map
from bactrian.mine.parts import plan_parts, split_change
from bactrian.mine.textdiff import diff_stats

FILL = "".join(f"let pad{i} = {i}\n" for i in range(8))
OLD_ML = "let a = 1\n" + FILL + "let b = 2\n" + FILL.replace("pad", "qad") + "let c = 3\n"
NEW_ML = (
    "let a = 1\n"
    + "".join(f"let helper{i} x = x * {i}\n" for i in range(1))
    + "let helper x = x * 2\n"
    + "".join(f"let h{i} = helper {i}\n" for i in range(3))
    + FILL
    + "let b = helper 2\n"
    + FILL.replace("pad", "qad")
    + "let c = 4\n"
    + "".join(f"let c{i} = {i}\n" for i in range(5))
)
OLD_MLI = "val a : int\nval b : int\nval c : int\n"
NEW_MLI = "val a : int\nval helper : int -> int\nval b : int\nval c : int\n"


def test_a_definition_travels_with_its_uses_and_its_interface() -> None:
    old = {"lib/m.ml": OLD_ML.encode(), "lib/m.mli": OLD_MLI.encode()}
    new = {"lib/m.ml": NEW_ML.encode(), "lib/m.mli": NEW_MLI.encode()}
    parts = split_change(old, new, max_lines=10, max_files=5)
    assert len(parts) == 2
    first, second = parts[0][1], parts[1][1]
    assert "+let helper x = x * 2" in first and "+let b = helper 2" in first
    assert "+val helper : int -> int" in first
    assert "+let c = 4" in second and "helper" not in second
    assert all(diff_stats(d)["changed"] <= 10 for _, d in parts)
    state = old
    for _, d in parts:
        state = apply_to_map(state, d)
    assert state == new


def test_a_change_within_the_limits_is_one_part() -> None:
    old = {"lib/m.ml": OLD_ML.encode()}
    new = {"lib/m.ml": NEW_ML.encode()}
    assert len(plan_parts(old, new, 100, 5)) == 1
    assert plan_parts(old, old, 100, 5) == []
