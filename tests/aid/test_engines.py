"""The real engines behind the sidecar: the CES check of an arm on a real dune project, and
the whole protocol with the offline model SmolLM2 (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.aid.conftest import SidecarProc

GOOD = (
    "```diff\n--- a/lib/shape.ml\n+++ b/lib/shape.ml\n@@ -1 +1,2 @@\n type t = Circle of float\n"
    '+let to_string (Circle r) = Printf.sprintf "circle %g" r\n```\n'
)
BAD = (
    "```diff\n--- a/lib/shape.ml\n+++ b/lib/shape.ml\n@@ -1 +1,2 @@\n type t = Circle of float\n"
    '+let to_string (Circle r) = r ^ "circle"\n```\n'
)


def _dune_project(root: Path) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "dune-project").write_text("(lang dune 2.9)\n")
    (root / "lib" / "dune").write_text("(library (name shape))\n")
    (root / "lib" / "shape.ml").write_text("type t = Circle of float\n")
    return root


def test_an_arm_with_check_carries_the_ces_verdict(short_tmp: Path, tmp_path: Path) -> None:
    ws = _dune_project(tmp_path / "ws")
    answers = [{"match": "good", "text": GOOD}, {"match": "bad", "text": BAD}]
    sc = SidecarProc(
        short_tmp, ws, aid={"check": True, "build_probe": "dune"}, answers=answers
    ).start()
    try:
        with sc.client() as c:
            good = c.propose_wait(
                {"prompt": "good to_string", "file": {"path": "lib/shape.ml"}}, timeout_s=600
            )[-1]
            assert good["kind"] == "final" and good["applies"], good
            assert good["verdict"]["passed"] and good["verdict"]["stage"] in ("build", "test"), (
                repr(good["verdict"])[:3000]
            )
            bad = c.propose_wait(
                {"prompt": "bad to_string", "file": {"path": "lib/shape.ml"}}, timeout_s=600
            )[-1]
            assert bad["applies"] and not bad["verdict"]["passed"], bad["verdict"]
            assert bad["verdict"]["stages"].get("typecheck") == "failed", bad["verdict"]
            st = c.request("status")
            assert st["build"]["status"] in ("green", "unknown")
        # the check ran on a copy: the workspace is untouched and has no _build of ours
        assert (ws / "lib" / "shape.ml").read_text() == "type t = Circle of float\n"
    finally:
        sc.stop()


@pytest.mark.slow
def test_full_protocol_with_smollm2(short_tmp: Path, workspace: Path) -> None:
    sc = SidecarProc(
        short_tmp, workspace, aid={"model": "smollm2"}, models="[models.smollm2]\nmax_tokens = 24\n"
    )
    sc.start()
    try:
        with sc.client(timeout_s=900) as c:
            assert c.init_result is not None and c.init_result["arm"]["model"] == "smollm2"
            evs = c.propose_wait(
                {"prompt": "add a to_string for t", "file": {"path": "lib/shape.ml"}}, timeout_s=900
            )
            kinds = [e["kind"] for e in evs]
            assert kinds[0] == "context" and "token" in kinds and kinds[-1] == "final", kinds
            final = evs[-1]
            assert final["timing"]["modelMs"] > 0 and final["timing"]["ttftMs"] is not None
            text = "".join(e["text"] for e in evs if e["kind"] == "token")
            assert (
                text.strip()
            )  # the real model said something; whether it is a diff is its business
            assert isinstance(final["wellFormed"], bool)
            pid, q = c.propose(
                {"prompt": "write a long essay about OCaml", "file": {"path": "lib/shape.ml"}}
            )
            assert q.get(timeout=600)["kind"] == "context"
            c.request("cancel", {"proposalId": pid})
            assert c.events(pid, q, 600)[-1]["kind"] in ("cancelled", "final")
            fb = c.request("feedback", {"proposalId": final["proposalId"], "outcome": "rejected"})
            assert fb["recorded"]
    finally:
        sc.stop()
