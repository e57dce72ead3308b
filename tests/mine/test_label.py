"""Building each VCS part's base and target with a real dune build."""

from __future__ import annotations

from pathlib import Path

from bactrian.mine.config import MineConfig
from bactrian.mine.label import label_examples
from bactrian.mine.vcs import mine_history
from tests.mine.repos import sh


def test_parts_of_a_dune_repo_are_labelled_by_real_builds(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    (repo / "src").mkdir(parents=True)
    (repo / "dune-project").write_text("(lang dune 2.9)\n")
    (repo / "src" / "dune").write_text("(library (name lab))\n")
    (repo / "src" / "a.ml").write_text("let one = 1\n")
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "init")
    (repo / "src" / "a.ml").write_text("let one = 1\nlet two = one + 1\n")
    sh(repo, "git", "commit", "-q", "-am", "add two")
    (repo / "src" / "a.ml").write_text('let one = 1\nlet two = one + "1"\n')
    sh(repo, "git", "commit", "-q", "-am", "break two")
    examples, _ = mine_history(repo, "HEAD~2..HEAD", MineConfig())
    counts = label_examples(examples, tmp_path / "work", timeout_s=120)
    assert [(e.stats["base_build"], e.stats["target_build"]) for e in examples] == [
        ("green", "green"),
        ("green", "red"),
    ]
    assert counts == {"base_green": 2, "target_green": 1, "target_red": 1}
    assert not (repo / "_build").exists(), "labelling built inside the user's repository"


def test_mine_label_flag_records_build_states(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from bactrian.cli import cli

    repo = tmp_path / "r"
    (repo / "src").mkdir(parents=True)
    (repo / "dune-project").write_text("(lang dune 2.9)\n")
    (repo / "src" / "dune").write_text("(library (name lab))\n")
    (repo / "src" / "a.ml").write_text("let one = 1\n")
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "init")
    (repo / "src" / "a.ml").write_text("let one = 1\nlet two = one + 1\n")
    sh(repo, "git", "commit", "-q", "-am", "add two")
    res = CliRunner().invoke(
        cli, ["mine", "--from-vcs", str(repo), "--range", "HEAD~1..HEAD", "--label", "--json"]
    )
    assert res.exit_code == 0, res.output
    ex = json.loads(res.output)["examples"][0]
    assert (ex["stats"]["base_build"], ex["stats"]["target_build"]) == ("green", "green")


def test_timeline_episodes_are_labelled_on_their_snapshot_trees(tmp_path: Path) -> None:
    """A red → green fix from a real snapshot timeline: its base (the red snapshot) builds red
    with the recorded error, its gold diff green — through one warm tree per base."""
    from bactrian.mine.label import Labeller
    from bactrian.mine.timeline import mine_store
    from bactrian.snapshot import load_config, open_store
    from bactrian.snapshot.take import take_snapshot

    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "dune-project").write_text("(lang dune 2.9)\n")
    (ws / "src" / "dune").write_text("(library (name lab))\n")
    cfg = load_config()
    for text in ("let one = 1\n", 'let one = 1 + "x"\n', "let one = 1 + 1\n"):
        (ws / "src" / "a.ml").write_text(text)
        take_snapshot(ws, config=cfg)
    store = open_store(ws, cfg)
    try:
        examples, _ = mine_store(store)
    finally:
        store.close()
    fix = next(e for e in examples if e.kind == "fix")
    lab = Labeller()
    lab.label_examples([fix])
    assert (fix.stats["base_build"], fix.stats["target_build"]) == ("red", "green")
    assert fix.stats["base_diagnostics"][0]["file"] == "src/a.ml"
    assert lab.warm_trees == 1
