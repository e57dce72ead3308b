"""The Python API (evaluate, async, TRL reward) and the ``bactrian ces`` CLI, end to end."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.ces import api
from bactrian.ces.config import CESConfig
from bactrian.cli import cli
from bactrian.errors import BaseNotGreenError

from .conftest import small_config
from .project import edit, write_project

GREEN = edit("lib/geom.ml", "let double x = 2 * x", "let double x = x + x")
TYPE = edit("lib/geom.ml", "x * x", 'x + "a"')
FAILING_TEST = edit("lib/shapes.ml", "| Rect (w, h) -> w * h", "| Rect (w, h) -> w + h")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project")


@pytest.fixture
def config(tmp_path: Path) -> Iterator[CESConfig]:
    yield small_config(tmp_path / "work", workers=1)
    api.shutdown()


def test_evaluate_and_async(project: Path, config: CESConfig) -> None:
    verdicts = api.evaluate(project, [GREEN, TYPE], config=config)
    assert [(v.ok, v.furthest) for v in verdicts] == [(True, "test"), (False, "parse")]
    again = asyncio.run(api.evaluate_async(project, [TYPE], config=config))
    assert again[0].fingerprint() == verdicts[1].fingerprint()
    # the shared backend kept the base warm: one pool, three jobs
    status = api.get_backend("local", config).status()
    assert len(status["bases"]) == 1 and status["counters"]["jobs"] == 3


def test_reward_function_has_trl_signature(project: Path, config: CESConfig) -> None:
    seen = []
    reward = api.reward_function(project, config=config, on_verdicts=seen.extend)
    completions = [
        f"Here is the fix:\n```diff\n{GREEN}```\n",
        [{"role": "assistant", "content": f"```diff\n{TYPE}```"}],
        "no diff at all",
    ]
    assert reward(completions, prompts=["a", "b", "c"]) == [1.0, 0.2, 0.0]
    assert [v.furthest for v in seen] == ["test", "parse", None]


def test_base_that_is_not_green_is_refused(project: Path, config: CESConfig) -> None:
    (project / "lib" / "geom.ml").write_text('let square x = x + "a"\nlet double x = 2 * x\n')
    with pytest.raises(BaseNotGreenError, match=r"(?s)typecheck.*geom\.ml"):
        api.evaluate(project, [GREEN], config=config)


def test_stage_override_and_generic_adapter(tmp_path: Path, config: CESConfig) -> None:
    proj = tmp_path / "plain"
    proj.mkdir()
    (proj / "answer.txt").write_text("yes\n")
    stages = {"typecheck": "test -s answer.txt", "build": "", "test": "grep -q yes answer.txt"}
    diff = "--- a/answer.txt\n+++ b/answer.txt\n@@ -1 +1 @@\n-yes\n+no\n"
    [v] = api.evaluate(proj, [diff], stages=stages, config=config)
    assert [(s.name, s.status) for s in v.stages] == [
        ("apply", "passed"),
        ("parse", "skipped"),
        ("typecheck", "passed"),
        ("build", "skipped"),
        ("test", "failed"),
    ]
    assert v.furthest == "build" and not v.ok


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_eval_json_warm_and_status(project: Path, tmp_path: Path) -> None:
    (tmp_path / "green.diff").write_text(GREEN)
    (tmp_path / "fail.diff").write_text(FAILING_TEST)
    code, out = _cli("ces", "warm", str(project), "--workers", "1", "--json")
    assert code == 0 and json.loads(out)["workers"] == 1
    code, out = _cli("ces", "status", "--json")
    assert code == 0 and json.loads(out)["bases"][0]["source"] == str(project.resolve())
    code, out = _cli(
        "ces", "eval", str(project), "--workers", "1", "--json",
        str(tmp_path / "green.diff"), str(tmp_path / "fail.diff"),
    )  # fmt: skip
    assert code == 2  # not every diff passed
    verdicts = json.loads(out)["verdicts"]
    assert [(v["ok"], v["furthest"]) for v in verdicts] == [(True, "test"), (False, "build")]
    for v in verdicts:
        assert {"ok", "furthest", "stages", "diagnostics", "reward"} <= set(v)
    # without the test stage the failing test no longer fails the diff
    code, out = _cli(
        "ces", "eval", str(project), "--workers", "1", "--stage", "test=",
        str(tmp_path / "fail.diff"),
    )  # fmt: skip
    assert code == 0 and out.startswith("OK")


def test_cli_eval_git_base_at_a_revision(project: Path, tmp_path: Path) -> None:
    env = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "-C", str(project), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(project), "add", "."], check=True)
    subprocess.run(["git", *env, "-C", str(project), "commit", "-qm", "base"], check=True)
    # a later, broken working copy must not matter: the base is the commit
    (project / "lib" / "geom.ml").write_text("broken (\n")
    (tmp_path / "type.diff").write_text(TYPE)
    code, out = _cli(
        "ces", "eval", str(project), "--rev", "HEAD", "--workers", "1", "--json",
        str(tmp_path / "type.diff"),
    )  # fmt: skip
    assert code == 2, out
    [v] = json.loads(out)["verdicts"]
    assert v["furthest"] == "parse"
    assert (project / "lib" / "geom.ml").read_text() == "broken (\n"


def test_cli_bad_stage_option(project: Path, tmp_path: Path) -> None:
    (tmp_path / "d.diff").write_text(GREEN)
    result = CliRunner().invoke(
        cli, ["ces", "eval", str(project), "--stage", "bogus=x", str(tmp_path / "d.diff")]
    )
    assert result.exit_code != 0 and "NAME=CMD" in result.output


def test_cli_address_needs_the_ray_backend(project: Path, tmp_path: Path) -> None:
    (tmp_path / "d.diff").write_text(GREEN)
    result = CliRunner().invoke(
        cli, ["ces", "eval", str(project), "--address", "auto", str(tmp_path / "d.diff")]
    )
    assert result.exit_code != 0 and "--backend ray" in result.output


def test_completion_to_diff_reads_model_output_through_bactrian_diffs() -> None:
    from bactrian.ces.api import completion_to_diff

    diff = edit("lib/geom.ml", "2 * x", "x + x")
    fenced = f"Here is the fix:\n```diff\n{diff}```\nThat should do it."
    out = completion_to_diff(fenced)
    assert out.startswith("diff --git a/lib/geom.ml b/lib/geom.ml")
    assert "+let double x = x + x" in out
    chat = [{"role": "user", "content": "fix it"}, {"role": "assistant", "content": fenced}]
    assert completion_to_diff(chat) == out
    # no readable edit: passed on unchanged so the apply stage says why
    assert completion_to_diff("I cannot help with that.") == "I cannot help with that."
