"""Hostile clients: hypothesis over frames and params, plus raw random bytes. Every request
that arrives in a well-formed frame is answered (a result or an error, never a hang), and the
server stays up and answers ``status`` afterwards."""

from __future__ import annotations

import json
import socket
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bactrian.aid import protocol as P
from bactrian.aid import session
from tests.aid.conftest import SidecarProc

METHODS = [*session.METHODS, "x/y", ""]  # every method, an unknown one and an empty name
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
param_keys = st.sampled_from(
    [
        "prompt",
        "file",
        "buffers",
        "proposalId",
        "outcome",
        "finalText",
        "target",
        "name",
        "arguments",
        "protocolVersion",
        "client",
        "workspaceRoot",
        "cursor",
        "diagnostics",
        "user",
    ]
)
params = st.dictionaries(param_keys, json_values, max_size=5)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _connect(sc: SidecarProc) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(str(sc.socket))
    return s


def _replies(s: socket.socket, want: set[Any]) -> list[dict[str, Any]]:
    """Read messages until every id in ``want`` is answered (or the server closes)."""
    reader = P.FrameReader(1 << 30)
    out: list[dict[str, Any]] = []
    while want:
        try:
            data = s.recv(65536)
        except TimeoutError:
            raise AssertionError(f"no answer for {want}") from None
        if not data:
            break
        reader.feed(data)
        for msg in reader.messages():
            out.append(msg)
            if "id" in msg and ("result" in msg or "error" in msg):
                want.discard(msg["id"])
    return out


def _init(root: str) -> bytes:
    return P.encode(
        {
            "jsonrpc": "2.0",
            "id": "init",
            "method": "initialize",
            "params": {"protocolVersion": "1.0", "client": {"name": "fuzz"}, "workspaceRoot": root},
        }
    )


@SETTINGS
@given(data=st.binary(max_size=3000))
def test_raw_bytes(shared_sidecar: SidecarProc, data: bytes) -> None:
    s = _connect(shared_sidecar)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        msgs = _replies(s, {object()})  # read to EOF
        for m in msgs:
            assert "error" in m or "result" in m or m.get("method") == "aid/progress"
    finally:
        s.close()


@SETTINGS
@given(
    method=st.sampled_from(METHODS),
    p=params,
    init=st.booleans(),
    rid=st.integers(1, 10**6) | st.text(min_size=1, max_size=8),
)
def test_requests_with_random_params_are_all_answered(
    shared_sidecar: SidecarProc, method: str, p: dict[str, Any], init: bool, rid: Any
) -> None:
    s = _connect(shared_sidecar)
    try:
        if init:
            s.sendall(_init(str(shared_sidecar.workspace)))
        body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": p}
        s.sendall(P.encode(body))
        want = {rid, "init"} if init else {rid}
        msgs = _replies(s, set(want))
        answered = {m["id"] for m in msgs if "id" in m}
        assert want <= answered, msgs
        for m in msgs:
            if "error" in m:
                assert isinstance(m["error"]["code"], int) and m["error"]["message"]
                assert "Traceback" not in m["error"]["message"]
    finally:
        s.close()


@SETTINGS
@given(
    header=st.sampled_from(
        ["ok", "missing", "huge", "negative", "words", "lowercase", "extra", "long"]
    ),
    body=json_values,
)
def test_broken_frames_get_an_error_then_close(
    shared_sidecar: SidecarProc, header: str, body: Any
) -> None:
    raw = json.dumps(body).encode()
    heads = {
        "ok": b"Content-Length: %d\r\n\r\n" % len(raw),
        "missing": b"Content-Type: application/json\r\n\r\n",
        "huge": b"Content-Length: 99999999999\r\n\r\n",
        "negative": b"Content-Length: -5\r\n\r\n",
        "words": b"Content-Length: ten\r\n\r\n",
        "lowercase": b"content-length: %d\r\n\r\n" % len(raw),
        "extra": b"Content-Length: %d\r\nX: y\r\n\r\n" % len(raw),
        "long": b"X-Pad: " + b"a" * 5000 + b"\r\n\r\n",
    }
    s = _connect(shared_sidecar)
    try:
        s.sendall(heads[header] + raw)
        s.shutdown(socket.SHUT_WR)
        msgs = _replies(s, {object()})
        if header in ("ok", "lowercase", "extra"):
            # a JSON value that is not a request object is an invalid request, answered
            assert all("error" in m or "result" in m for m in msgs)
        else:
            assert len(msgs) == 1 and msgs[0]["id"] is None and "error" in msgs[0]
            if header == "huge":
                assert msgs[0]["error"]["code"] == P.FRAME_TOO_LARGE
    finally:
        s.close()


def test_server_survives_and_answers_status(shared_sidecar: SidecarProc) -> None:
    # runs after the fuzzers above (same module-scoped server)
    with shared_sidecar.client() as c:
        st_ = c.request("status")
        assert st_["pid"] == shared_sidecar.server_pid()
        final = c.propose_wait({"prompt": "to_string", "file": {"path": "lib/shape.ml"}})[-1]
        assert final["kind"] == "final" and final["applies"]
