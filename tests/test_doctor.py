"""``bactrian doctor`` on a repository whose default build is red because ``bench/`` needs a
library that is not installed, and ``mine --label`` with the scope it saves."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.cli import cli
from bactrian.doctor import diagnose, load_scope, workspace_config_path
from bactrian.dune import BuildScope
from tests.mine import dune_repos


def test_doctor_names_the_missing_library_and_saves_a_scope_that_builds(tmp_path: Path) -> None:
    repo = dune_repos.bench_repo(tmp_path / "r")
    before = sorted(p.name for p in repo.iterdir())
    res = CliRunner().invoke(cli, ["doctor", str(repo), "--rev", "HEAD~1"])
    assert res.exit_code == 0, res.output
    assert (
        'bench/ needs library "core_bench", not installed: Library "core_bench" not found'
        in res.output
    )
    assert "suggested scope: --exclude-dir bench" in res.output
    assert load_scope(repo) == BuildScope(exclude_dirs=["bench"])
    cfg = workspace_config_path(repo)
    assert cfg.is_file() and not cfg.resolve().is_relative_to(repo.resolve())
    assert sorted(p.name for p in repo.iterdir()) == before, "doctor wrote inside the repository"


def test_doctor_prefers_only_packages_when_the_broken_part_is_a_package(tmp_path: Path) -> None:
    repo = dune_repos.bench_repo(tmp_path / "r", package_bench=True)
    d = diagnose(repo, rev="HEAD~1", save=False)
    assert d.state == "red" and d.causes[0].name == "core_bench"
    assert d.scope == BuildScope(only_packages=["mylib"])
    assert d.saved_to is None and load_scope(repo) is None


def test_doctor_widens_the_scope_over_stanzas_and_revisions(tmp_path: Path) -> None:
    """dune stops at the first broken stanza: fuzz/ shows only once bench/ is left out; the
    saved scope covers every revision given."""
    from tests.mine.dune_repos import bench_project, git_repo

    files = bench_project(fuzz=True)
    repo = git_repo(
        tmp_path / "r",
        [
            ("initial", files),
            ("drop the fuzzers", {"fuzz/dune": None, "fuzz/f.ml": None}),
        ],
    )
    d = diagnose(repo, rev="HEAD~1", save=False)
    assert {c.name for c in d.causes} == {"core_bench", "crowbar"}
    assert d.scope == BuildScope(exclude_dirs=["bench", "fuzz"])
    res = CliRunner().invoke(cli, ["doctor", str(repo), "--rev", "HEAD", "--rev", "HEAD~1"])
    assert res.exit_code == 0, res.output
    assert "scope for every revision: --exclude-dir bench --exclude-dir fuzz" in res.output
    assert load_scope(repo) == BuildScope(exclude_dirs=["bench", "fuzz"])


def test_a_broken_optional_package_beside_the_main_library_is_left_out_by_package(
    tmp_path: Path,
) -> None:
    """From eqaf: ``lib/`` holds the main library and an optional one needing ``cstruct``;
    excluding ``lib/`` would leave nothing worth building."""
    from tests.mine.dune_repos import bench_project, git_repo

    files = bench_project()
    files["lib/dune"] = (
        "(library (name mylib) (public_name mylib) (modules a))\n"
        "(library (name mylib_extra) (public_name mylib-extra) (modules extra)"
        " (libraries core_bench mylib))\n"
    )
    files["lib/extra.ml"] = "let y = Mylib.A.x\n"
    files["mylib-extra.opam"] = ""
    repo = git_repo(tmp_path / "r", [("initial", files)])
    d = diagnose(repo, save=False)
    assert {(c.dir, c.name) for c in d.causes} >= {("lib", "core_bench")}
    assert d.scope == BuildScope(only_packages=["mylib"], exclude_dirs=["bench"]), d.tried
    assert d.scope is not None and "lib" not in d.scope.exclude_dirs


def test_doctor_on_a_green_build_says_so(tmp_path: Path) -> None:
    repo = dune_repos.view_repo(tmp_path / "r")
    d = diagnose(repo)
    assert d.state == "green" and d.causes == [] and d.scope is None
    assert load_scope(repo) is None


def test_mine_label_reports_a_red_base_then_labels_with_the_saved_scope(tmp_path: Path) -> None:
    repo = dune_repos.bench_repo(tmp_path / "r")
    args = ["mine", "--from-vcs", str(repo), "--range", "HEAD~2..HEAD", "--label", "--no-store"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "red base" in res.output and 'Library "core_bench" not found' in res.output
    assert "--exclude-dir bench" in res.output
    assert diagnose(repo, rev="HEAD~1").scope == BuildScope(exclude_dirs=["bench"])
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    states = [(e["stats"]["base_build"], e["stats"]["target_build"]) for e in out["examples"]]
    assert states == [("green", "green"), ("green", "red")]
    red = out["examples"][1]["stats"]["target_diagnostics"]
    assert red[0]["file"] == "lib/a.ml" and "string" in red[0]["message"]
    assert out["labels"]["warm_trees"] == 2 and out["labels"]["red_bases"] == []
    human = CliRunner().invoke(cli, args)
    assert "label: base green -> target red" in human.output
    assert "target: lib/a.ml:2:" in human.output
    assert not (repo / "_build").exists()


def test_mine_label_takes_an_explicit_scope(tmp_path: Path) -> None:
    repo = dune_repos.bench_repo(tmp_path / "r")
    args = ["mine", "--from-vcs", str(repo), "--range", "HEAD~2..HEAD~1", "--label", "--no-store"]
    res = CliRunner().invoke(cli, [*args, "--exclude-dir", "bench", "--json"])
    assert res.exit_code == 0, res.output
    ex = json.loads(res.output)["examples"][0]
    assert (ex["stats"]["base_build"], ex["stats"]["target_build"]) == ("green", "green")
    bad = CliRunner().invoke(
        cli, ["mine", "--from-vcs", str(repo), "--range", "HEAD~1..HEAD", "--exclude-dir", "bench"]
    )
    assert bad.exit_code != 0 and "go with --label" in bad.output


def test_the_snapshotter_warns_once_and_its_probe_honours_the_scope(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bactrian.doctor import save_scope
    from bactrian.snapshot import load_config
    from bactrian.snapshot.take import take_snapshot

    ws = tmp_path / "ws"
    for path, text in dune_repos.bench_project().items():
        (ws / path).parent.mkdir(parents=True, exist_ok=True)
        (ws / path).write_text(text or "")
    cfg = load_config()
    caplog.set_level(logging.WARNING, logger="bactrian.snapshot")
    for i in range(4):
        (ws / "lib" / "a.ml").write_text(f"let x = {i}\n")
        snap = take_snapshot(ws, config=cfg)
        assert snap.build.state.value == "red"
    warnings = [
        r.getMessage() for r in caplog.records if "red or unknown for all" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert 'Library "core_bench" not found' in warnings[0] and "--exclude-dir bench" in warnings[0]
    save_scope(ws, BuildScope(exclude_dirs=["bench"]))
    (ws / "lib" / "a.ml").write_text("let x = 9\n")
    snap = take_snapshot(ws, config=cfg)
    assert snap.build.state.value == "green", snap.build.log
    assert "@lib/check" in snap.build.command and "@test/check" in snap.build.command


def test_doctor_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    repo = dune_repos.bench_repo(tmp_path / "r")
    for args, want in (
        ([str(repo), "--rev", "v9.9"], f"no revision 'v9.9' in {repo}"),
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tmp_path)], "has no dune-project at its root"),
    ):
        res = CliRunner().invoke(cli, ["doctor", *args])
        assert res.exit_code == 1 and want in res.output, res.output
        assert "Traceback" not in res.output
