"""The whole protocol against a real sidecar process with the scripted backend."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from bactrian.aid import protocol as P
from bactrian.aid.client import AidClient
from tests.aid.conftest import SidecarProc


def _metrics(sc: SidecarProc, pid: str) -> dict[str, object]:
    db = sqlite3.connect(sc.metrics)
    db.row_factory = sqlite3.Row
    row = db.execute("SELECT * FROM requests WHERE proposal_id = ?", (pid,)).fetchone()
    db.close()
    assert row is not None, pid
    return dict(row)


def test_initialize_propose_stream_apply_feedback(shared_sidecar: SidecarProc) -> None:
    sc = shared_sidecar
    with sc.client(name="test-client", user="ada") as c:
        init = c.init_result
        assert init is not None and init["protocolVersion"] == P.PROTOCOL_VERSION
        assert set(init["capabilities"]["methods"]) >= {
            "propose",
            "apply",
            "tools/call",
            "describe",
        }
        assert init["arm"] == {
            "experiment": None,
            "arm": "default",
            "model": "scripted",
            "strategy": "unified-diff",
            "check": False,
        }
        unsaved = "type t = Circle of float\n"
        evs = c.propose_wait(
            {"prompt": "add a to_string for t", "file": {"path": "lib/shape.ml", "text": unsaved}}
        )
        kinds = [e["kind"] for e in evs]
        assert kinds[0] == "context" and kinds[-1] == "final" and kinds.count("token") >= 1
        ctx = evs[0]
        assert [(f["path"], f["reason"]) for f in ctx["files"]] == [
            ("lib/shape.ml", "current"),
            ("lib/shape.mli", "sibling"),
            ("test/test_shape.ml", "test"),
        ]
        tokens = "".join(e["text"] for e in evs if e["kind"] == "token")
        assert "let to_string" in tokens
        final = evs[-1]
        assert final["wellFormed"] and final["applies"] and not final["lenient"]
        assert final["files"][0]["newText"].endswith('Printf.sprintf "circle %g" r\n')
        assert final["timing"]["totalMs"] >= final["timing"]["overheadMs"] >= 0
        # a proposal never writes the workspace
        assert (sc.workspace / "lib" / "shape.ml").read_text() == unsaved
        pid = final["proposalId"]
        # the editor's buffer moved two lines down meanwhile: the lenient ladder places it
        moved = "(* a *)\n(* b *)\n" + unsaved
        res = c.request(
            "apply", {"proposalId": pid, "buffers": [{"path": "lib/shape.ml", "text": moved}]}
        )
        assert res["applied"] and res["written"] == []
        assert res["files"][0]["hunks"][0]["rung"] == "offset"
        assert res["files"][0]["newText"].startswith("(* a *)\n(* b *)\ntype t")
        assert (sc.workspace / "lib" / "shape.ml").read_text() == unsaved
        edited = res["files"][0]["newText"] + "let extra = 1\n"
        fb = c.request(
            "feedback",
            {"proposalId": pid, "outcome": "edited", "finalText": {"lib/shape.ml": edited}},
        )
        assert fb == {"recorded": True, "editDistance": 3}  # two comment lines and one extra
    row = _metrics(sc, pid)
    assert row["user"] == "ada" and row["arm"] == "default" and row["model"] == "scripted"
    assert (
        row["well_formed"] == 1
        and row["applies"] == 1
        and row["applied"] == 1
        and row["rung"] == "offset"
    )
    assert row["outcome"] == "edited" and row["edit_distance"] == 3 and row["status"] == "final"
    assert row["ttft_ms"] is not None and row["context_files"] == 3


def test_apply_to_files_writes_all_or_nothing(sidecar: SidecarProc) -> None:
    with sidecar.client() as c:
        final = c.propose_wait({"prompt": "to_string please", "file": {"path": "lib/shape.ml"}})[-1]
        res = c.request("apply", {"proposalId": final["proposalId"], "target": "files"})
        assert res["written"] == ["lib/shape.ml"]
        assert "let to_string" in (sidecar.workspace / "lib" / "shape.ml").read_text()
        # applied once; the second time its context is gone: a clear error, nothing written
        (sidecar.workspace / "lib" / "shape.ml").write_text("something else\n")
        with pytest.raises(P.RpcError) as err:
            c.request("apply", {"proposalId": final["proposalId"], "target": "files"})
        assert err.value.code == P.APPLY_FAILED
        assert (sidecar.workspace / "lib" / "shape.ml").read_text() == "something else\n"


def test_cancel_ends_the_stream_and_is_recorded(shared_sidecar: SidecarProc) -> None:
    with shared_sidecar.client() as c:
        pid, q = c.propose({"prompt": "say it slowly", "file": {"path": "lib/shape.ml"}})
        first = q.get(timeout=30)
        assert first["kind"] == "context"
        assert c.request("cancel", {"proposalId": pid}) == {"cancelled": True}
        evs = c.events(pid, q, 30)
        assert evs[-1]["kind"] == "cancelled"
        toks = [e for e in evs if e["kind"] == "token"]
        assert len(toks) < 200
        # 50 ms apart, tokens stream one event each, in order
        assert {e["text"] for e in toks} <= {"word", " "} and [e["index"] for e in toks] == list(
            range(len(toks))
        )
        assert c.request("cancel", {"proposalId": pid}) == {"cancelled": False}
        with pytest.raises(P.RpcError) as err:
            c.request("cancel", {"proposalId": "p-nope"})
        assert err.value.code == P.UNKNOWN_PROPOSAL
    time.sleep(0.2)
    assert _metrics(shared_sidecar, pid)["status"] == "cancelled"


def test_model_error_and_prose_answers(shared_sidecar: SidecarProc) -> None:
    with shared_sidecar.client() as c:
        err = c.propose_wait({"prompt": "boom", "file": {"path": "lib/shape.ml"}})[-1]
        assert err["kind"] == "error" and err["code"] == P.MODEL_ERROR and not err["retryable"]
        assert "scripted failure" in err["message"]
        prose = c.propose_wait({"prompt": "hello", "file": {"path": "lib/shape.ml"}})[-1]
        assert prose["kind"] == "final" and not prose["wellFormed"] and not prose["applies"]
        assert prose["error"]
        with pytest.raises(P.RpcError) as e2:
            c.request("apply", {"proposalId": prose["proposalId"]})
        assert e2.value.code == P.APPLY_FAILED


def test_bad_requests_get_clear_errors_and_the_server_goes_on(shared_sidecar: SidecarProc) -> None:
    sc = shared_sidecar
    with sc.client(root=None) as c:
        assert c.request("status")["workspaceRoot"] is None  # status works before initialize
        with pytest.raises(P.RpcError) as e:
            c.request("propose", {"prompt": "x"})
        assert e.value.code == P.NOT_INITIALIZED
        with pytest.raises(P.RpcError) as e:
            c.request(
                "initialize",
                {
                    "protocolVersion": "2.0",
                    "client": {"name": "x"},
                    "workspaceRoot": str(sc.workspace),
                },
            )
        assert (
            e.value.code == P.UNSUPPORTED_PROTOCOL
            and "2.0" in e.value.message
            and "1.0" in e.value.message
        )
    outside = sc.workspace.parent / "secret.ml"
    outside.write_text("secret\n")
    (sc.workspace / "lib" / "link.ml").symlink_to(outside)
    with sc.client() as c:
        cases = [
            ("nope/method", {}, P.METHOD_NOT_FOUND),
            ("propose", {"prompt": 42}, P.INVALID_PARAMS),
            (
                "propose",
                {"prompt": "x", "file": {"path": "../secret.ml"}},
                P.PATH_OUTSIDE_WORKSPACE,
            ),
            ("propose", {"prompt": "x", "file": {"path": str(outside)}}, P.PATH_OUTSIDE_WORKSPACE),
            ("propose", {"prompt": "x", "file": {"path": "lib/link.ml"}}, P.PATH_OUTSIDE_WORKSPACE),
            ("propose", {"prompt": "x", "buffers": [{"path": "a.ml"}]}, P.INVALID_PARAMS),
            ("apply", {"proposalId": "p-unknown"}, P.UNKNOWN_PROPOSAL),
            ("feedback", {"proposalId": "p-unknown", "outcome": "accepted"}, P.UNKNOWN_PROPOSAL),
            ("tools/call", {"name": "no_such_tool"}, P.UNKNOWN_TOOL),
            ("tools/call", {"name": "interface", "arguments": {"module": 3}}, P.INVALID_PARAMS),
        ]
        for method, params, code in cases:
            with pytest.raises(P.RpcError) as e:
                c.request(method, params)
            assert e.value.code == code, (method, params, e.value.message)
            assert e.value.message and "Traceback" not in e.value.message
        assert c.request("status")["pid"] == sc.server_pid()


def test_tools_and_describe(tmp_path: Path, short_tmp: Path) -> None:
    ws = tmp_path / "ws"
    from tests.aid.conftest import make_workspace

    make_workspace(ws)
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    subprocess.run(["git", "-C", str(ws), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(ws),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "base",
        ],
        check=True,
    )
    (ws / "lib" / "shape.ml").write_text(
        "type t = Circle of float\n\nlet area (Circle r) = 3.14 *. r *. r\n"
    )
    sc = SidecarProc(short_tmp, ws).start()
    try:
        with sc.client() as c:
            names = [t["name"] for t in c.request("tools/list")["tools"]]
            assert {"interface", "typecheck", "tests_for", "build_status"} <= set(names)
            mli = c.request("tools/call", {"name": "interface", "arguments": {"module": "Shape"}})[
                "content"
            ]
            assert mli == {
                "path": "lib/shape.mli",
                "text": "type t = Circle of float\n",
                "inferred": False,
            }
            inferred = c.request(
                "tools/call", {"name": "interface", "arguments": {"module": "other"}}
            )["content"]
            assert inferred["inferred"] and inferred["text"].strip() == "val x : int"
            tc = c.request(
                "tools/call",
                {
                    "name": "typecheck",
                    "arguments": {"path": "lib/other.ml", "text": 'let x = 1 + "a"\n'},
                },
            )["content"]
            assert not tc["ok"] and "Error" in tc["output"]
            tests = c.request(
                "tools/call", {"name": "tests_for", "arguments": {"module": "Shape"}}
            )["content"]
            assert tests["tests"] == ["test/test_shape.ml"]
            desc = c.request("describe")
            assert desc["vcs"] == "git" and desc["files"] == ["lib/shape.ml"]
            assert "+let area" in desc["diff"] and desc["description"]
        # describe never wrote the repository
        st = subprocess.run(
            ["git", "-C", str(ws), "status", "--porcelain"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert st.stdout.strip() == "M lib/shape.ml"
    finally:
        sc.stop()


def test_second_server_refused_and_stale_socket_reclaimed(sidecar: SidecarProc) -> None:
    second = sidecar.run_cli("serve", "--no-warm", timeout=60)
    assert second.returncode == 1
    assert "Another aid server" in second.stderr and "Traceback" not in second.stderr
    pid = sidecar.server_pid()
    import os
    import signal

    os.kill(pid, signal.SIGKILL)  # a crash leaves the socket behind
    assert sidecar.proc is not None
    sidecar.proc.wait(10)
    assert sidecar.socket.exists()
    sidecar.start()
    with sidecar.client() as c:
        assert c.request("status")["pid"] != pid


def test_status_cli_and_client_give_up_cleanly(sidecar: SidecarProc, short_tmp: Path) -> None:
    out = sidecar.run_cli("status", "--json")
    assert out.returncode == 0, out.stderr
    assert '"protocolVersion": "1.0"' in out.stdout
    sidecar.stop()
    gone = sidecar.run_cli("status")
    assert (
        gone.returncode == 1
        and "No aid server runs" in gone.stderr
        and "Traceback" not in gone.stderr
    )
    with pytest.raises(Exception, match="not running"):
        AidClient(short_tmp / "none.sock", root=str(sidecar.workspace), reconnect_s=0.3)


def _raw_proposals(sc: SidecarProc, n: int) -> list[tuple[str, int, int]]:
    """One raw connection: initialize and *n* pipelined proposes; for each proposal, the
    position of its ``propose`` response and of its first ``aid/progress`` frame."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(str(sc.socket))
    init = {
        "protocolVersion": P.PROTOCOL_VERSION,
        "client": {"name": "raw", "version": "1"},
        "workspaceRoot": str(sc.workspace),
    }
    sock.sendall(P.encode({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}))
    frames = P.FrameReader(1 << 24)
    while not (msgs := list(frames.messages())):
        frames.feed(sock.recv(1 << 16))
    assert len(msgs) == 1 and "result" in msgs[0], msgs
    out = []
    for i in range(1, n + 1):
        params = {"prompt": f"raw {i}", "file": {"path": "lib/shape.ml"}}
        out.append(P.encode({"jsonrpc": "2.0", "id": i, "method": "propose", "params": params}))
    sock.sendall(b"".join(out))
    answered: dict[str, int] = {}
    first: dict[str, int] = {}
    ended: set[str] = set()
    seen = 0
    deadline = time.monotonic() + 60
    while len(ended) < n and time.monotonic() < deadline:
        data = sock.recv(1 << 16)
        assert data, "the server hung up"
        frames.feed(data)
        for msg in frames.messages():
            seen += 1
            if msg.get("method") == "aid/progress":
                pid = msg["params"]["proposalId"]
                first.setdefault(pid, seen)
                if msg["params"]["kind"] in ("final", "error", "cancelled"):
                    ended.add(pid)
            elif isinstance(msg.get("id"), int) and msg["id"] > 0:
                assert "result" in msg, msg
                answered[msg["result"]["proposalId"]] = seen
    sock.close()
    assert len(ended) == n and set(answered) == set(first) == ended
    return [(pid, answered[pid], first[pid]) for pid in answered]


def test_propose_result_is_written_before_its_progress(shared_sidecar: SidecarProc) -> None:
    """On the raw socket, with an instant backend so that each proposal's pipeline thread
    races its response: the ``propose`` result frame always comes before the first
    ``aid/progress`` frame of that proposal."""
    rows = [row for _ in range(12) for row in _raw_proposals(shared_sidecar, 4)]
    assert len(rows) == 48
    early = [pid for pid, answer, progress in rows if progress < answer]
    assert early == [], f"{len(early)} of 48 proposals streamed before their propose result"
