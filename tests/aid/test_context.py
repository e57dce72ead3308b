"""Context under a token budget, and the prompt identity between a mined example and a live
request: the sidecar renders with the same strategy objects as training and evaluation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bactrian.aid.context import ContextRequest, WorkspaceIndex, build_context
from bactrian.aid.recent import RecentFiles
from bactrian.aid.retrieval import Retriever
from bactrian.dataset.example import Example
from bactrian.evaluate.run import eval_prompt
from bactrian.mine.context import decode_files
from bactrian.models import make_backend, resolve_model
from bactrian.snapshot import NullProbe, load_config, take_snapshot
from bactrian.strategies import get_strategy
from bactrian.types import Diagnostic, Severity
from tests.aid.conftest import SidecarProc

PROMPT = "add a to_string for t"


@pytest.mark.parametrize("strategy", ["unified-diff", "search-replace"])
def test_mined_example_and_live_request_render_byte_identical_prompts(
    short_tmp: Path, workspace: Path, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace / "lib" / "shape.ml").write_text(
        "type t = Circle of float\n" + "".join(f"let v{i} = {i}\n" for i in range(40))
    )
    diag = Diagnostic(
        "lib/shape.ml", 3, 4, 3, 9, Severity.ERROR, "Unbound value foo", "unbound"
    ).to_dict()
    # the budget is small enough that the strategy must drop and shorten files
    models = f"max_prompt_tokens = 120\nstrategy = {json.dumps(strategy)}\n"
    sc = SidecarProc(short_tmp, workspace, models=models).start()
    try:
        with sc.client() as c:
            evs = c.propose_wait(
                {"prompt": PROMPT, "file": {"path": "lib/shape.ml"}, "diagnostics": [diag]}
            )
        ctx = evs[0]
        assert ctx["kind"] == "context" and ctx["cut"], ctx  # the budget did cut
        live = [json.loads(line)["messages"] for line in sc.record.read_text().splitlines()]
        assert len(live) == 1
        # the same inputs as a mined example: the base tree's files decoded by the miner,
        # its diagnostics and its prompt, rendered as evaluation and training render it
        names = ["lib/shape.ml", "lib/shape.mli", "test/test_shape.ml"]
        files = decode_files({p: (workspace / p).read_bytes() for p in names})
        ex = Example(
            source="ws",
            kind="fix",
            diff="",
            context={"files": files, "diagnostics": [diag]},
            prompt=PROMPT,
        )
        monkeypatch.setenv("BACTRIAN_CONFIG", str(sc.config))
        mcfg = resolve_model("scripted")
        backend = make_backend(mcfg)
        strat = get_strategy(mcfg.strategy)
        mined = eval_prompt(ex, strat, count=backend.count_tokens, budget=mcfg.max_prompt_tokens)
        assert mined.messages == live[0]
        assert json.dumps(mined.messages).encode() == json.dumps(live[0]).encode()
        assert (
            strat.sft_messages(ex, count=backend.count_tokens, budget=mcfg.max_prompt_tokens)[:-1]
            == live[0]
        )
        assert ctx["promptTokens"] == mined.tokens and ctx["cut"] == mined.cut
    finally:
        sc.stop()


def test_context_choice_and_reasons(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "lib").mkdir(parents=True)
    (ws / "test").mkdir()
    (ws / "lib" / "a.ml").write_text("let a = 1\n")
    (ws / "lib" / "a.mli").write_text("val a : int\n")
    (ws / "lib" / "b.ml").write_text("let b = A.a\n")
    (ws / "test" / "test_a.ml").write_text("let () = assert (A.a = 1)\n")
    (ws / "lib" / "big.ml").write_bytes(b"x" * 5000)
    (ws / "lib" / "bin.ml").write_bytes(b"\0\1\2")
    outside = tmp_path / "outside.ml"
    outside.write_text("secret\n")
    (ws / "lib" / "link.ml").symlink_to(outside)
    root = ws.resolve()
    req = ContextRequest(
        root,
        "fix it",
        "lib/a.ml",
        "let a = 2 (* unsaved *)\n",
        buffers={"lib/bin.ml": "now text\n"},
        diagnostics=[
            {"file": "lib/b.ml", "line": 1},
            {"file": "lib/link.ml", "line": 1},
            {"file": "../x.ml"},
        ],
    )
    ctx = build_context(req, WorkspaceIndex(root), max_bytes=1000)
    assert ctx.files["lib/a.ml"] == "let a = 2 (* unsaved *)\n"  # unsaved text wins over disk
    assert ctx.reasons == {
        "lib/a.ml": "current",
        "lib/a.mli": "sibling",
        "test/test_a.ml": "test",
        "lib/b.ml": "diagnostic",
        "lib/bin.ml": "buffer",
    }
    assert "lib/link.ml" not in ctx.files and "lib/big.ml" not in ctx.files


def test_retrieval_and_recent_files(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "lib").mkdir(parents=True)
    for i in range(30):
        (ws / "lib" / f"m{i}.ml").write_text(f"let value_{i} = {i}\n")
    (ws / "lib" / "ledger.ml").write_text("let post_transaction ledger amount = ledger + amount\n")
    root = ws.resolve()
    state = tmp_path / "state"
    state.mkdir()
    index = WorkspaceIndex(root)
    r = Retriever(root, state, index, limit=2)
    assert r.refresh() == 31 and r.refresh() == 0  # incremental: nothing changed
    assert r.search(root, "call post_transaction on the ledger", [])[0] == "lib/ledger.ml"
    time.sleep(0.01)
    (ws / "lib" / "m3.ml").write_text("let post_transaction_twice = 2\n")
    assert r.refresh() == 1
    assert set(r.search(root, "post_transaction", [])) == {"lib/ledger.ml", "lib/m3.ml"}
    req = ContextRequest(root, "use post_transaction", "lib/m0.ml")
    ctx = build_context(req, index, retrieve=r.search)
    assert ctx.reasons.get("lib/ledger.ml") == "retrieval"
    # recent files come from the snapshot store when the workspace is snapshotted
    cfg = load_config()
    take_snapshot(root, config=cfg, probe=NullProbe())
    (ws / "lib" / "m7.ml").write_text("let value_7 = 70\n")
    take_snapshot(root, config=cfg, probe=NullProbe())
    assert RecentFiles(4).get(root) == ["lib/m7.ml"]
    ctx2 = build_context(req, index, recent=RecentFiles(4).get)
    assert ctx2.reasons.get("lib/m7.ml") == "recent"
