"""Split commits: parts in dependency order, every part built for real through the CES when
labelling, red parts handled and counted."""

from __future__ import annotations

from pathlib import Path

from bactrian.mine.config import MineConfig
from bactrian.mine.label import Labeller
from bactrian.mine.parts import Part, Unit, cut_chain
from bactrian.mine.vcs import mine_history
from tests.mine import dune_repos


def _labeller(tmp_path: Path) -> Labeller:
    from bactrian.ces.config import CESConfig

    return Labeller(
        config=CESConfig.load(workers=1, work_dir=tmp_path / "ces", edits_tests_policy="trust")
    )


def test_a_module_alias_comes_after_the_module_and_every_part_builds(tmp_path: Path) -> None:
    repo = dune_repos.view_repo(tmp_path / "r")
    cfg = MineConfig(max_changed_lines=45)
    counts: dict[str, int] = {}
    lab = _labeller(tmp_path)
    examples, skipped = mine_history(repo, "HEAD~1..HEAD", cfg, counts=counts, checker=lab)
    assert [e.kind for e in examples] == ["vcs-part", "vcs-part"]
    first, second = examples
    assert "b/lib/view.ml" in first.diff and "b/lib/view.mli" in first.diff
    assert "module View = View" in second.diff
    assert [(e.stats["base_build"], e.stats["target_build"]) for e in examples] == [
        ("green", "green"),
        ("green", "green"),
    ]
    assert counts["parts_checked"] == 2 and counts["parts_green"] == 2
    assert lab.warm_trees == 1, "one warm tree per base, not a cold build per state"
    assert not (repo / "_build").exists()


def test_a_part_that_breaks_the_build_makes_the_commit_whole(tmp_path: Path) -> None:
    repo = dune_repos.signature_repo(tmp_path / "r")
    cfg = MineConfig(max_changed_lines=50)
    unchecked, _ = mine_history(repo, "HEAD~1..HEAD", cfg)
    assert len(unchecked) == 2, "the planner was expected to split this commit"
    counts: dict[str, int] = {}
    examples, skipped = mine_history(
        repo, "HEAD~1..HEAD", cfg, counts=counts, checker=_labeller(tmp_path)
    )
    assert [e.kind for e in examples] == ["change"]
    assert examples[0].stats["target_build"] == "green"
    assert counts["split_kept_whole"] == 1


def test_a_part_over_the_limit_cuts_the_chain_there() -> None:
    def part(n: int) -> Part:
        return Part([Unit("lib/a.ml", 0, 0, [], 0, n)])

    kept, cut = cut_chain([part(10), part(80), part(10)], 50, 5)
    assert [p.size for p in kept] == [10] and cut == 2
    assert cut_chain([part(80)], 50, 5) == ([part(80)], 0)


def test_a_gold_diff_that_edits_tests_is_labelled_by_its_build(tmp_path: Path) -> None:
    """The CES fails a model's diff for touching tests; a mined gold diff's test edits are
    the change itself, so labelling builds them like any other file."""
    repo = dune_repos.same_names_repo(tmp_path / "r")
    examples, _ = mine_history(repo, "HEAD~1..HEAD", MineConfig())
    lab = Labeller()  # the default labelling config, as `mine --label` uses it
    counts = lab.label_examples(examples)
    assert "b/test/test.ml" in examples[0].diff
    assert counts == {"base_green": 1, "target_green": 1}, examples[0].stats


def test_a_removed_record_field_travels_with_the_code_that_stops_using_it() -> None:
    """From a real split of ocaml-base64: part 1 removed ``h``/``h_len`` from a record while
    code using them stayed for part 2, so part 1 did not build."""
    from bactrian.mine.parts import plan_parts

    pad = "".join(f"let pad{i} = {i}\n" for i in range(30))
    old = (
        "type t = {\n  a : int;\n  mutable h_len : int;\n}\n"
        + pad
        + "let get t = t.a\n"
        + pad.replace("pad", "qad")
        + "let len t = t.h_len\n"
    )
    new = "type t = {\n  a : int;\n}\n" + pad + "let get t = t.a + 1\n" + pad.replace("pad", "qad")
    new += "let len _ = 0\n"
    parts = plan_parts({"lib/m.ml": old.encode()}, {"lib/m.ml": new.encode()}, 3, 5)
    field_part = next(p for p in parts if any(u.a_start < 4 for u in p.units))
    assert any(u.a_start > 60 for u in field_part.units), [
        [(u.a_start, u.b_lines) for u in p.units] for p in parts
    ]
