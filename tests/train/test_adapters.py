"""The verl and OpenRLHF adapters, called exactly as their frameworks call them, against the
real CES on a real OCaml base: verl reads the exported parquet and calls
``compute_score(data_source, solution_str, ground_truth, extra_info)``; OpenRLHF POSTs
``{"query", "prompts", "labels"}`` to the endpoint `bactrian ces serve` mounts."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from bactrian.ces.api import shutdown
from bactrian.ces.backends import make_backend
from bactrian.ces.rlreward import ExampleJudge, model_output_config
from bactrian.ces.service import create_app
from bactrian.dataset.splits import export_dataset, load_dataset
from bactrian.train import verl
from tests.evaluate.conftest import STAGES
from tests.train.conftest import train_config_file

TOKEN = "s3cret-token"


def _answers(ds: Path) -> tuple[str, list[str]]:
    _, exs = load_dataset(ds)
    rl = next(e for e in exs if e.split == "rl")
    gold = f"```diff\n{rl.diff}```\n"
    broken = gold.replace("let sub a b = a - b\n", "let sub a b = a -. b\n")
    return rl.id, [gold, broken, "no idea"]


def test_verl_compute_score_on_the_exported_parquet(
    money_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    monkeypatch.setenv("BACTRIAN_CONFIG", str(train_config_file(tmp_path, ces_workers=1)))
    [path] = [p for p in export_dataset(money_dataset, "verl") if p.name == "rl.parquet"]
    [row] = pq.read_table(str(path)).to_pylist()
    assert row["data_source"] == "bactrian" and row["prompt"][-1]["role"] == "user"
    assert set(row["reward_model"]) == {"style", "ground_truth"}
    example_id, answers = _answers(money_dataset)
    assert row["extra_info"]["example_id"] == example_id
    try:
        scores = [
            verl.compute_score(
                data_source=row["data_source"],
                solution_str=a,
                ground_truth=row["reward_model"]["ground_truth"],
                extra_info=row["extra_info"],
            )
            for a in answers
        ]
    finally:
        shutdown()
        verl._JUDGES.clear()
    assert scores[0]["score"] == pytest.approx(1.1) and scores[0]["ok"] == 1.0
    assert scores[0]["matches_gold"] == 1.0
    assert 0.1 < scores[1]["score"] < 1.0 and scores[1]["ok"] == 0.0
    assert scores[2]["score"] == 0.0 and scores[2]["infra_error"] == 0.0
    with pytest.raises(Exception, match="extra_info must carry"):
        verl.compute_score("bactrian", answers[0], "", {})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def openrlhf_url(money_dataset: Path, tmp_path: Path) -> Iterator[str]:
    config = model_output_config("both", workers=1)
    backend = make_backend("local", config)
    judge = ExampleJudge(
        money_dataset,
        split=None,
        backend=backend,
        config=config,
        stages=STAGES,
        bases_dir=tmp_path / "bases",
    )
    app = create_app(backend, token=TOKEN, openrlhf_judge=judge)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    backend.close()


def test_openrlhf_remote_reward_endpoint(money_dataset: Path, openrlhf_url: str) -> None:
    [path] = [p for p in export_dataset(money_dataset, "openrlhf") if p.name == "rl.jsonl"]
    [row] = [json.loads(x) for x in path.read_text().splitlines()]
    example_id, answers = _answers(money_dataset)
    assert row["label"] == example_id and row["input"][-1]["role"] == "user"
    prompt = (
        "<|im_start|>user\n" + row["input"][-1]["content"] + "<|im_end|>\n<|im_start|>assistant\n"
    )
    body = {
        "query": [prompt + a for a in answers],
        "prompts": [prompt] * len(answers),
        "labels": [row["label"]] * len(answers),
    }
    url = f"{openrlhf_url}/openrlhf/reward"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(url, json=body, timeout=10).status_code == 401
    reply = httpx.post(url, json=body, headers=auth, timeout=300)
    assert reply.status_code == 200, reply.text
    out = reply.json()
    assert set(out) == {"rewards", "scores", "extra_logs"}
    rewards = out["rewards"]
    assert rewards[0] == pytest.approx(1.1) and 0.1 < rewards[1] < 1.0 and rewards[2] == 0.0
    assert out["scores"] == rewards
    assert out["extra_logs"]["ces_ok"] == [1.0, 0.0, 0.0]
    assert out["extra_logs"]["ces_infra_error"] == [0.0, 0.0, 0.0]
    # hostile input: an unknown label, misaligned lists, a query that is not its prompt's
    bad = [
        {**body, "labels": ["../../etc/passwd"] * 3},
        {**body, "labels": body["labels"][:1]},
        {**body, "query": ["x" + q for q in body["query"]]},
    ]
    for b in bad:
        r = httpx.post(url, json=b, headers=auth, timeout=30)
        assert r.status_code == 422 and "detail" in r.json(), r.text
