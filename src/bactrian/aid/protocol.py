"""The AID wire protocol: LSP framing (``Content-Length``), JSON-RPC 2.0 messages, error codes
and parameter checks. Nothing here knows about sockets or models: :class:`FrameReader` is fed
bytes and yields messages, so the framing is tested (and fuzzed) without a server.

The protocol itself is written down in ``docs/aid-protocol.md``; this module is its code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = "1.0"
MAX_HEADER_LINE = 1024
MAX_HEADER_LINES = 8

# JSON-RPC 2.0 codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# AID codes (docs/aid-protocol.md, "Errors")
RESTARTING = -32001  # the only retryable code
NOT_INITIALIZED = -32002
FORBIDDEN = -32003
FRAME_TOO_LARGE = -32004
UNSUPPORTED_PROTOCOL = -32010
UNKNOWN_PROPOSAL = -32011
PATH_OUTSIDE_WORKSPACE = -32012
APPLY_FAILED = -32013
MODEL_ERROR = -32014
TOOL_ERROR = -32015
UNKNOWN_TOOL = -32016
BUSY = -32017
REQUEST_CANCELLED = -32800


class RpcError(Exception):
    """An error answered to the client as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data: dict[str, Any] = dict(data or {})
        if code == RESTARTING:
            self.data.setdefault("retryable", True)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        out["data"] = {"retryable": self.code == RESTARTING, **self.data}
        return out


class FrameError(RpcError):
    """The byte stream itself is broken: answered with ``id: null``, then the connection
    closes (it cannot be resynchronised)."""


def restarting(retry_after_ms: int = 50) -> RpcError:
    return RpcError(
        RESTARTING,
        "The AID server is restarting: reconnect and send the request again.",
        {"retryAfterMs": retry_after_ms},
    )


# --------------------------------------------------------------------------- framing


def encode(message: Mapping[str, Any]) -> bytes:
    """One framed message."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class FrameReader:
    """Incremental LSP-frame parser. :meth:`feed` bytes, iterate :meth:`messages`; a broken
    stream raises :class:`FrameError` (and the reader is dead from then on)."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max = max_frame_bytes
        self._buf = bytearray()
        self._need: int | None = None  # body length once the header is read
        self.dead = False

    def feed(self, data: bytes) -> None:
        self._buf.extend(data)

    def buffered(self) -> int:
        return len(self._buf)

    def messages(self) -> Iterator[Any]:
        while not self.dead:
            if self._need is None and not self._read_header():
                return
            assert self._need is not None
            if len(self._buf) < self._need:
                return
            body = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            self._need = None
            yield self._decode(body)

    def _fail(self, code: int, message: str, data: Mapping[str, Any] | None = None) -> FrameError:
        self.dead = True
        return FrameError(code, message, data)

    def _read_header(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEADER_LINE * MAX_HEADER_LINES:
                raise self._fail(INVALID_REQUEST, "The frame header is too long or never ends.")
            return False
        raw = bytes(self._buf[:end])
        del self._buf[: end + 4]
        length: int | None = None
        lines = raw.split(b"\r\n")
        if len(lines) > MAX_HEADER_LINES:
            raise self._fail(INVALID_REQUEST, f"The frame header has {len(lines)} lines (max 8).")
        for line in lines:
            if len(line) > MAX_HEADER_LINE:
                raise self._fail(INVALID_REQUEST, "A frame header line is longer than 1 KiB.")
            try:
                text = line.decode("ascii")
            except UnicodeDecodeError:
                raise self._fail(INVALID_REQUEST, "A frame header line is not ASCII.") from None
            name, sep, value = text.partition(":")
            if not sep:
                raise self._fail(
                    INVALID_REQUEST,
                    f"Malformed frame header line {text[:80]!r}: expected 'Name: value'.",
                )
            if name.strip().lower() == "content-length":
                value = value.strip()
                if not value.isdigit() or len(value) > 12:
                    raise self._fail(
                        INVALID_REQUEST, f"Content-Length {value[:20]!r} is not a number."
                    )
                length = int(value)
        if length is None:
            raise self._fail(
                INVALID_REQUEST,
                "The frame has no Content-Length header: send 'Content-Length: N\\r\\n\\r\\n' "
                "before each JSON body.",
            )
        if length > self.max:
            raise self._fail(
                FRAME_TOO_LARGE,
                f"The frame's Content-Length {length} is above the server's limit of "
                f"{self.max} bytes ([aid] max_frame_bytes).",
                {"max": self.max},
            )
        self._need = length
        return True

    def _decode(self, body: bytes) -> Any:
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._fail(PARSE_ERROR, f"The frame's body is not UTF-8 JSON: {exc}.") from None


# --------------------------------------------------------------------------- messages


@dataclass
class Request:
    """A request (``id`` set) or a notification (``id`` None, ``notification`` True)."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    id: int | str | None = None
    notification: bool = False


def parse_message(msg: Any) -> Request:
    """Check one decoded JSON value is a JSON-RPC 2.0 request; raise :class:`RpcError`."""
    if isinstance(msg, list):
        raise RpcError(INVALID_REQUEST, "Batch requests are not supported: send one at a time.")
    if not isinstance(msg, dict):
        raise RpcError(INVALID_REQUEST, "A JSON-RPC message must be a JSON object.")
    if msg.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'The message lacks "jsonrpc": "2.0".')
    has_id = "id" in msg
    rid = msg.get("id")
    if has_id and (isinstance(rid, bool) or not isinstance(rid, int | str)):
        raise RpcError(INVALID_REQUEST, "A request id must be a string or an integer.")
    method = msg.get("method")
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, 'The message has no "method" string.')
    params = msg.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "params must be a JSON object (by-name parameters).")
    return Request(method, params, rid, notification=not has_id)


def response(rid: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def error_response(rid: Any, err: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": err.to_dict()}


def notification(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": dict(params)}


def check_version(client: str) -> None:
    """Same major version as the server's, or :data:`UNSUPPORTED_PROTOCOL`."""
    major = client.split(".", 1)[0]
    if major != PROTOCOL_VERSION.split(".", 1)[0] or not major.isdigit():
        raise RpcError(
            UNSUPPORTED_PROTOCOL,
            f"Protocol version {client!r} is not supported: this server speaks "
            f"{PROTOCOL_VERSION}. Upgrade the editor client or the server so their major "
            "versions match.",
            {"server": PROTOCOL_VERSION, "client": client},
        )


# --------------------------------------------------------------------------- params


def _bad(name: str, expected: str, value: Any) -> RpcError:
    got = type(value).__name__ if value is not None else "nothing"
    return RpcError(
        INVALID_PARAMS, f"Parameter {name!r} must be {expected}, got {got}.", {"field": name}
    )


def get_str(
    params: Mapping[str, Any], name: str, *, required: bool = True, max_len: int = 0
) -> str:
    value = params.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _bad(name, "a non-empty string" if required else "a string", value)
    if max_len and len(value) > max_len:
        raise RpcError(
            INVALID_PARAMS,
            f"Parameter {name!r} is longer than {max_len} characters.",
            {"field": name},
        )
    return value


def get_int(params: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, "an integer", value)
    return value


def get_obj(params: Mapping[str, Any], name: str, *, required: bool = False) -> dict[str, Any]:
    value = params.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _bad(name, "an object", value)
    return value


def get_list(params: Mapping[str, Any], name: str) -> list[Any]:
    value = params.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(name, "an array", value)
    return value


def get_buffers(params: Mapping[str, Any], name: str = "buffers") -> dict[str, str]:
    """``[{path, text}]`` → ``{path: text}``, every entry checked."""
    out: dict[str, str] = {}
    for i, item in enumerate(get_list(params, name)):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise _bad(where, "an object {path, text}", item)
        path = item.get("path")
        text = item.get("text")
        if not isinstance(path, str) or not path:
            raise _bad(f"{where}.path", "a non-empty string", path)
        if not isinstance(text, str):
            raise _bad(f"{where}.text", "a string", text)
        out[path] = text
    return out
