"""The shared transcript's rules (``editors/transcript.json``), in Python: substitution of
``${...}`` values, matching of a result against its expected pattern, and a replay over a raw
socket. The Emacs, Neovim and VS Code replays implement the same rules in their languages;
this one proves the transcript true against the real sidecar."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from tests.editors.conftest import transcript


class Mismatch(AssertionError):
    pass


def subst(value: Any, env: dict[str, Any], texts: dict[str, str]) -> Any:
    """``value`` with every ``${NAME}`` / ``${text:NAME}`` string replaced."""
    if isinstance(value, dict):
        return {k: subst(v, env, texts) for k, v in value.items()}
    if isinstance(value, list):
        return [subst(v, env, texts) for v in value]
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        name = value[2:-1]
        if name == "any" or name.startswith("save:"):
            return value
        if name.startswith("text:"):
            return texts[name[5:]]
        return env[name]
    return value


def match(expected: Any, actual: Any, env: dict[str, Any], where: str = "") -> None:
    """Raise :class:`Mismatch` unless ``actual`` matches the (substituted) pattern."""
    if isinstance(expected, str) and expected == "${any}":
        return
    if isinstance(expected, str) and expected.startswith("${save:"):
        env[expected[7:-1]] = actual
        return
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise Mismatch(f"{where}: expected an object, got {actual!r}")
        for key, val in expected.items():
            if key not in actual and val is not None:
                raise Mismatch(f"{where}.{key}: missing in {actual!r}")
            match(val, actual.get(key), env, f"{where}.{key}")
        return
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            raise Mismatch(f"{where}: expected {len(expected)} elements, got {actual!r}")
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            match(e, a, env, f"{where}[{i}]")
        return
    if expected != actual:
        raise Mismatch(f"{where}: expected {expected!r}, got {actual!r}")


class RawClient:
    """Content-Length framed JSON-RPC over the Unix socket, nothing more."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(path))
        self.buf = b""
        self.next_id = 0
        self.notes: list[dict[str, Any]] = []

    def close(self) -> None:
        self.sock.close()

    def _read(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        while len(rest) < length:
            self.buf = head + b"\r\n\r\n" + rest
            self._more()
            head, _, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = rest[length:]
        msg: dict[str, Any] = json.loads(rest[:length])
        return msg

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the sidecar closed the connection")
        self.buf += data

    def request(self, method: str, params: Any) -> dict[str, Any]:
        self.next_id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        )
        data = body.encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(data) + data)
        while True:
            msg = self._read()
            if msg.get("id") == self.next_id and "method" not in msg:
                return msg
            self.notes.append(msg)

    def stream(self, proposal_id: str) -> list[dict[str, Any]]:
        """The proposal's ``aid/progress`` params up to its last one (final/error/cancelled)."""
        out: list[dict[str, Any]] = []
        while True:
            while self.notes:
                note = self.notes.pop(0)
                params = note.get("params") or {}
                if note.get("method") == "aid/progress" and params.get("proposalId") == proposal_id:
                    out.append(params)
                    if params.get("kind") in ("final", "error", "cancelled"):
                        return out
            self.notes.append(self._read())


def check_stream(
    stream: list[dict[str, Any]], spec: dict[str, Any], env: dict[str, Any], where: str
) -> None:
    """The stream rule: the first notification is the context, then tokens (and tools) whose
    texts add up to ``text``, then the final one."""
    kinds = [p.get("kind") for p in stream]
    if len(stream) < 2 or kinds[0] != "context" or kinds[-1] != spec.get("last", "final"):
        raise Mismatch(f"{where}: stream kinds {kinds}")
    match(spec["context"], stream[0], env, f"{where}.context")
    text = "".join(p["text"] for p in stream[1:-1] if p.get("kind") == "token")
    if "text" in spec and text != spec["text"]:
        raise Mismatch(f"{where}: streamed text {text!r} != {spec['text']!r}")
    match(spec.get("final", {}), stream[-1], env, f"{where}.final")


def replay(path: Path, root: Path, client: str = "transcript.py") -> int:
    """Replay every step over a fresh connection; returns the number of steps run."""
    data = transcript()
    env: dict[str, Any] = {"root": str(root), "client": client}
    texts: dict[str, str] = data["texts"]
    conn = RawClient(path)
    try:
        for i, step in enumerate(data["steps"]):
            where = f"step {i} ({step['send']})"
            msg = conn.request(step["send"], subst(step["params"], env, texts))
            if "error" in step:
                match(subst(step["error"], env, texts), msg.get("error"), env, f"{where}.error")
            else:
                if "error" in msg:
                    raise Mismatch(f"{where}: error {msg['error']!r}")
                match(subst(step["result"], env, texts), msg.get("result"), env, f"{where}.result")
            if "stream" in step:
                spec = subst(step["stream"], env, texts)
                check_stream(conn.stream(spec["proposalId"]), spec, env, where)
        return len(data["steps"])
    finally:
        conn.close()
