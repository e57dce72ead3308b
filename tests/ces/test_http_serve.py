"""`bactrian ces serve` as a real subprocess on a loopback port judges a batch against a real
dune project, behind a bearer token, and its metrics count what it judged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bactrian.ces.client import CESClient
from bactrian.ces.metrics import parse_samples, sample
from bactrian.errors import BaseNotGreenError, CESError

from .project import write_project
from .test_verdicts import GREEN, TYPE

TOKEN = "serve-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    home = tmp_path_factory.mktemp("ces-serve")
    port = _free_port()
    env = {
        **os.environ,
        "BACTRIAN_DATA_DIR": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "CES_TEST_TOKEN": TOKEN,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("BACTRIAN_CONFIG", None)
    cmd = [sys.executable, "-m", "bactrian.cli", "ces", "serve", "--port", str(port)]
    cmd += ["--workers", "2", "--token-env", "CES_TEST_TOKEN"]
    cmd += ["--allow-root", str(tmp_path_factory.getbasetemp())]
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited {proc.returncode}: {(home / 'server.log').read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server not up in 60 s: {(home / 'server.log').read_text()}")
        time.sleep(0.2)
    yield url, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("shapes"))


@pytest.mark.slow
def test_serve_judges_a_batch_over_http(
    server: tuple[str, subprocess.Popen[str]], project: Path
) -> None:
    url, _ = server
    with CESClient(url, token=TOKEN, timeout_s=60) as ces:
        assert ces.health()["backend"] == "local"
        verdicts = ces.evaluate(str(project), [GREEN, TYPE, GREEN], wait_s=300)
        text = ces.metrics()
    assert [v.furthest for v in verdicts] == ["test", "parse", "test"]
    assert [v.ok for v in verdicts] == [True, False, True]
    assert verdicts[0].reward == 1.0
    assert any("string" in d.message for d in verdicts[1].diagnostics)
    m = parse_samples(text)
    assert sample(m, "bactrian_ces_jobs_total", outcome="ok") == 2
    assert sample(m, "bactrian_ces_jobs_total", outcome="failed_typecheck") == 1
    assert sample(m, "bactrian_ces_stage_seconds_count", stage="typecheck", status="passed") == 2
    assert sample(m, "bactrian_ces_resets_total") == 3
    assert sample(m, "bactrian_ces_workers") == 2
    assert sample(m, "bactrian_ces_backend_resets") >= 3


@pytest.mark.slow
def test_serve_refuses_without_the_token_and_reports_a_red_base(
    server: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, proc = server
    body = {"base": {"source": str(tmp_path)}, "diffs": [GREEN]}
    assert httpx.post(f"{url}/v1/batches", json=body).status_code == 401
    with pytest.raises(CESError, match="401"), CESClient(url) as anonymous:
        anonymous.metrics()
    red = write_project(tmp_path / "red")
    (red / "lib" / "geom.ml").write_text('let square x = x + "a"\nlet double x = 2 * x\n')
    with CESClient(url, token=TOKEN, timeout_s=60) as ces:
        with pytest.raises(BaseNotGreenError, match="not green"):
            ces.evaluate(str(red), [GREEN], wait_s=300)
        with pytest.raises(CESError, match="403.*outside the directories"):
            ces.submit("/usr/share", [GREEN])
        assert ces.health()["ok"] is True
    assert proc.poll() is None
