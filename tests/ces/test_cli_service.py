"""``bactrian ces eval`` through a running ``bactrian ces serve`` (real subprocess on loopback,
real dune, real bubblewrap) when ``[ces] url`` is set; ``-v``/``-vv``; the policy flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bactrian.ces import api
from bactrian.ces.client import CESClient
from bactrian.cli import cli

from .test_http_serve import TOKEN, project, server  # noqa: F401 - module fixtures
from .test_verdicts import GREEN, TYPE


def _run_cli(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "BACTRIAN_DATA_DIR": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "CES_TEST_TOKEN": TOKEN,
        **env,
    }
    full.pop("BACTRIAN_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "bactrian.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_ces_eval_judges_through_the_service_named_by_ces_url(
    server: tuple[str, subprocess.Popen[str]],  # noqa: F811
    project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    url, _ = server
    (tmp_path / "green.diff").write_text(GREEN)
    (tmp_path / "type.diff").write_text(TYPE)
    with CESClient(url, token=TOKEN, timeout_s=60) as ces:
        before = ces.status()["counters"]["jobs"]
    diffs = [str(tmp_path / "green.diff"), str(tmp_path / "type.diff")]
    done = _run_cli(
        ["-v", "ces", "eval", str(project), *diffs],
        tmp_path,
        BACTRIAN_CES_URL=url,
        BACTRIAN_CES_TOKEN_ENV="CES_TEST_TOKEN",
    )
    assert done.returncode == 2, done.stderr  # the second diff fails
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("OK ") and "furthest=test" in lines[0]
    # -v: each stage with its time and command
    assert any(
        line.split()[:2] == ["typecheck", "passed"] and "$ dune build" in line for line in lines
    )
    assert any("FAIL" in line and "furthest=parse" in line for line in lines)
    # the service judged them: this process warmed nothing of its own
    with CESClient(url, token=TOKEN, timeout_s=60) as ces:
        assert ces.status()["counters"]["jobs"] == before + 2
    assert not (tmp_path / "data" / "ces" / "bases").exists()
    # trust is refused by a service that does not allow it: one clean line
    refused = _run_cli(
        ["ces", "eval", "--url", url, "--token-env", "CES_TEST_TOKEN", "--json",
         "--edits-tests-policy", "trust", str(project), diffs[0]],
        tmp_path,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "403" in refused.stderr and "--allow-trust" in refused.stderr
    # each named policy is accepted
    ok = _run_cli(
        ["ces", "eval", "--url", url, "--token-env", "CES_TEST_TOKEN", "--json",
         "--edits-tests-policy", "pristine", str(project), diffs[0]],
        tmp_path,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verdicts"][0]["ok"] is True


@pytest.mark.slow
def test_ces_eval_falls_back_to_local_when_no_service_answers_and_vv_logs_the_sandbox(
    project: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACTRIAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("BACTRIAN_CONFIG", raising=False)
    (tmp_path / "green.diff").write_text(GREEN)
    done = _run_cli(
        ["-vv", "ces", "eval", "--workers", "1", str(project), str(tmp_path / "green.diff")],
        tmp_path,
        BACTRIAN_CES_URL="http://127.0.0.1:9",  # nothing listens there
    )
    api.shutdown()
    assert done.returncode == 0, done.stderr
    assert "no CES service answers" in done.stderr and "judging in this process" in done.stderr
    assert "sandbox: " in done.stderr and "bwrap" in done.stderr  # -vv: the sandbox argv
    assert "typecheck: dune build" in done.stderr  # -v: the stage command, logged
    assert any(
        line.strip().startswith("build ") and "$ dune build" in line
        for line in done.stdout.splitlines()
    )
    # an explicit --backend http with nothing there is an error, not a fallback
    result = CliRunner().invoke(
        cli,
        ["ces", "eval", "--backend", "http", "--url", "http://127.0.0.1:9",
         str(project), str(tmp_path / "green.diff")],
    )  # fmt: skip
    assert result.exit_code == 1 and "Cannot reach the CES service" in result.output
