"""A Python client of the AID protocol, following its reconnect rules (docs/aid-protocol.md):
used by ``bactrian aid status|restart``, the tests and the benchmark, and a reference for
editor clients.

    with AidClient(socket_path, root="/home/ada/proj") as c:
        events = c.propose_wait({"prompt": "add a to_string for t", "file": {"path": "lib/a.ml"}})
        final = events[-1]                      # kind "final" | "error" | "cancelled"
        c.request("apply", {"proposalId": final["proposalId"]})
"""

from __future__ import annotations

import contextlib
import queue
import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

from bactrian.aid import protocol as P

TERMINAL = ("final", "error", "cancelled")


class ConnectionLost(Exception):
    """The connection closed before the answer came."""


class AidClient:
    def __init__(
        self,
        socket_path: Path | str,
        *,
        root: Path | str | None = None,
        name: str = "bactrian-py",
        user: str | None = None,
        timeout_s: float = 60.0,
        reconnect_s: float = 30.0,
        initialize: bool = True,
    ) -> None:
        self.path = str(socket_path)
        self.root = str(root) if root is not None else None
        self.name = name
        self.user = user
        self.timeout_s = timeout_s
        self.reconnect_s = reconnect_s
        self.auto_init = initialize
        self.init_result: dict[str, Any] | None = None
        self.restarting = threading.Event()
        self.notifications: list[dict[str, Any]] = []
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ids = 0
        self._waiters: dict[Any, tuple[threading.Event, list[Any]]] = {}
        self._streams: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._early: dict[str, list[dict[str, Any]]] = {}
        self._reader: threading.Thread | None = None
        self.connect()

    # ------------------------------------------------------------------ connection
    def _open(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.restarting.clear()
        self._reader = threading.Thread(
            target=self._read_loop, args=(sock,), daemon=True, name="aid-client"
        )
        self._reader.start()

    def connect(self) -> None:
        """Connect (with the protocol's backoff while the server is not there) and
        re-send ``initialize``."""
        delay, deadline = 0.05, time.monotonic() + self.reconnect_s
        while True:
            try:
                self._open()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ConnectionLost(
                        f"bactrian aid is not running on {self.path}: start it with `bactrian aid serve`."
                    ) from None
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 1.0)
        if self.auto_init and self.root is not None:
            params: dict[str, Any] = {
                "protocolVersion": P.PROTOCOL_VERSION,
                "client": {"name": self.name, "version": "1"},
                "workspaceRoot": self.root,
            }
            if self.user:
                params["user"] = self.user
            self.init_result = self._call("initialize", params, self.timeout_s)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> AidClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_loop(self, sock: socket.socket) -> None:
        frames = P.FrameReader(1 << 30)
        try:
            while True:
                data = sock.recv(1 << 16)
                if not data:
                    break
                frames.feed(data)
                for msg in frames.messages():
                    self._route(msg)
        except (OSError, P.FrameError):
            pass
        with self._lock:
            waiters = list(self._waiters.values())
            streams = list(self._streams.values())
        for ev, slot in waiters:
            slot.append(ConnectionLost("the connection closed"))
            ev.set()
        for q in streams:
            q.put({"kind": "lost"})

    def _route(self, msg: dict[str, Any]) -> None:
        if "method" in msg and "id" not in msg:
            params = msg.get("params") or {}
            if msg["method"] == "aid/restarting":
                self.restarting.set()
            elif msg["method"] == "aid/progress":
                pid = str(params.get("proposalId"))
                with self._lock:
                    q = self._streams.get(pid)
                    if q is None:
                        self._early.setdefault(pid, []).append(params)
                if q is not None:
                    q.put(params)
                return
            self.notifications.append(msg)
            return
        with self._lock:
            waiter = self._waiters.pop(msg.get("id"), None)
        if waiter is not None:
            waiter[1].append(msg)
            waiter[0].set()
        elif msg.get("id") is None and "error" in msg:
            self.notifications.append(msg)  # a frame or peer error

    # ------------------------------------------------------------------ requests
    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests of malformed frames)."""
        if self._sock is None:
            raise ConnectionLost("not connected")
        with self._send_lock:
            self._sock.sendall(data)

    def _call(self, method: str, params: dict[str, Any] | None, timeout_s: float) -> Any:
        with self._lock:
            self._ids += 1
            rid = self._ids
            ev: threading.Event = threading.Event()
            slot: list[Any] = []
            self._waiters[rid] = (ev, slot)
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        try:
            self.send_raw(P.encode(msg))
        except OSError as exc:
            with self._lock:
                self._waiters.pop(rid, None)
            raise ConnectionLost(str(exc)) from None
        if not ev.wait(timeout_s):
            with self._lock:
                self._waiters.pop(rid, None)
            raise TimeoutError(f"{method}: no answer in {timeout_s} s")
        reply = slot[0]
        if isinstance(reply, Exception):
            raise reply
        if "error" in reply:
            err = reply["error"]
            raise P.RpcError(int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return reply.get("result")

    def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        retry: bool = True,
    ) -> Any:
        """One request; on a lost connection or ``-32001`` it reconnects (re-initializing)
        and sends the request again, as the protocol's reconnect rules say."""
        while True:
            try:
                return self._call(method, params, timeout_s or self.timeout_s)
            except (ConnectionLost, P.RpcError) as exc:
                if not retry or (isinstance(exc, P.RpcError) and exc.code != P.RESTARTING):
                    raise
                self.close()
                self.connect()

    # ------------------------------------------------------------------ proposals
    def propose(self, params: dict[str, Any]) -> tuple[str, queue.Queue[dict[str, Any]]]:
        pid = self._call("propose", params, self.timeout_s)["proposalId"]
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._streams[pid] = q
            early = self._early.pop(pid, [])
        for ev in early:
            q.put(ev)
        return pid, q

    def events(
        self, pid: str, q: queue.Queue[dict[str, Any]], timeout_s: float | None = None
    ) -> list[dict[str, Any]]:
        """The proposal's events up to its terminal one (``lost`` if the connection went)."""
        out = []
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"proposal {pid}: no final event in time")
            try:
                ev = q.get(timeout=left)
            except queue.Empty:
                continue
            out.append(ev)
            if ev.get("kind") in (*TERMINAL, "lost"):
                with self._lock:
                    self._streams.pop(pid, None)
                return out

    def propose_wait(
        self, params: dict[str, Any], *, timeout_s: float | None = None, retry: bool = True
    ) -> list[dict[str, Any]]:
        """Propose and wait for the end; a proposal ended by a restart is proposed again on
        the new server (reconnect rule 3)."""
        while True:
            try:
                pid, q = self.propose(params)
            except (ConnectionLost, P.RpcError) as exc:
                if not retry or (isinstance(exc, P.RpcError) and exc.code != P.RESTARTING):
                    raise
                self.close()
                self.connect()
                continue
            evs = self.events(pid, q, timeout_s)
            last = evs[-1]
            lost = last.get("kind") == "lost" or (
                last.get("kind") == "error" and last.get("retryable")
            )
            if not (retry and lost):
                return evs
            self.close()
            self.connect()
