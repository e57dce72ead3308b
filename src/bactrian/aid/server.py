"""The sidecar's server: asyncio over a Unix socket, LSP framing, JSON-RPC dispatch to
:class:`bactrian.aid.session.Sidecar`, ``aid/progress`` streaming, peer checks, the one-server
lock, SIGHUP reload and restart by takeover.

Restart (``bactrian aid restart``): a new server process starts with ``takeover``, warms its
models, binds a temporary socket next to the old one and renames it over the socket path
(from then on new connections reach it), then sends SIGTERM to the old server, which tells its
clients ``aid/restarting``, fails what is in flight with the retryable ``-32001`` and exits;
the new one takes the lock and the pid file. Clients follow docs/aid-protocol.md's reconnect
rules and are answered within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bactrian.aid import protocol as P
from bactrian.aid.config import AidConfig, load_aid_config
from bactrian.aid.deploy import UpgradeWatcher
from bactrian.aid.experiments import active_experiment
from bactrian.aid.paths import AidError, Layout, ServerLock, bind_socket, peer_uid
from bactrian.aid.session import Conn, Sidecar
from bactrian.errors import BactrianError

log = logging.getLogger(__name__)
READ_CHUNK = 1 << 16
MAX_WRITE_BUFFER = 64 << 20
NO_INIT = {"initialize", "status", "tools/list"}


def _user_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class Client:
    """One connection: its writer (loop thread only), its requests in flight."""

    def __init__(self, server: Server, writer: asyncio.StreamWriter, conn: Conn) -> None:
        self.server = server
        self.writer = writer
        self.conn = conn
        self.pending: set[Any] = set()
        # progress of a proposal whose ``propose`` result is not written yet: held back so
        # that the result always comes first on the wire (docs/aid-protocol.md)
        self.held: dict[Any, list[dict[str, Any]]] = {}
        self.closed = False

    def send(self, msg: dict[str, Any]) -> None:  # on the loop thread
        if self.closed or self.writer.is_closing():
            return
        transport = self.writer.transport
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("client %d reads too slowly; closing it", self.conn.id)
            self.closed = True
            self.writer.close()
            return
        self.writer.write(P.encode(msg))

    def send_threadsafe(self, msg: dict[str, Any]) -> None:
        self.server.loop.call_soon_threadsafe(self.send, msg)

    def answer(self, rid: Any, msg: dict[str, Any]) -> None:  # on the loop thread
        if rid in self.pending:
            self.pending.discard(rid)
            self.send(msg)
        held = self.held.pop(rid, None)
        if held and "result" in msg:
            for note in held:
                self.send(note)

    def progress(self, rid: Any, msg: dict[str, Any]) -> None:  # on the loop thread
        held = self.held.get(rid)
        if held is not None:
            held.append(msg)
        else:
            self.send(msg)


class Server:
    def __init__(
        self,
        sidecar: Sidecar,
        layout: Layout,
        *,
        config_path: Path | None = None,
        socket_mode: int = 0o600,
        check_peer: bool = True,
    ) -> None:
        self.sidecar = sidecar
        self.layout = layout
        self.config_path = config_path
        self.socket_mode = socket_mode
        self.check_peer = check_peer
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._inode: int | None = None
        self._ids = 0
        self.lock = ServerLock(layout)

    # ------------------------------------------------------------------ dispatch
    def _handlers(self) -> dict[str, Any]:
        s = self.sidecar
        return {
            "initialize": s.initialize,
            "cancel": s.cancel,
            "apply": s.apply,
            "feedback": s.feedback,
            "status": s.status,
            "describe": s.describe,
            "tools/list": s.tools_list,
            "tools/call": s.tools_call,
        }

    def dispatch(self, client: Client, raw: Any) -> None:
        rid = raw.get("id") if isinstance(raw, dict) else None
        try:
            req = P.parse_message(raw)
        except P.RpcError as exc:
            client.send(
                P.error_response(
                    rid if isinstance(rid, int | str) and not isinstance(rid, bool) else None, exc
                )
            )
            return
        if req.notification:
            return  # clients send none that the server acts on; unknown ones are ignored
        conn = client.conn
        if req.method != "initialize" and req.method not in NO_INIT and conn.root is None:
            client.send(
                P.error_response(
                    req.id,
                    P.RpcError(
                        P.NOT_INITIALIZED,
                        f"{req.method}: send initialize first on this connection.",
                    ),
                )
            )
            return
        if req.method == "propose":
            client.pending.add(req.id)
            client.held[req.id] = []
            self._run(
                client,
                req.id,
                lambda: self.sidecar.propose(conn, req.params, self._emitter(client, req.id)),
            )
            return
        handler = self._handlers().get(req.method)
        if handler is None:
            client.send(
                P.error_response(
                    req.id,
                    P.RpcError(
                        P.METHOD_NOT_FOUND,
                        f"Unknown method {req.method[:100]!r}.",
                        {
                            "method": req.method[:100],
                            "methods": sorted([*self._handlers(), "propose"]),
                        },
                    ),
                )
            )
            return
        client.pending.add(req.id)
        self._run(client, req.id, lambda: handler(conn, req.params))

    def _emitter(self, client: Client, rid: Any) -> Any:
        def emit(params: dict[str, Any]) -> None:
            msg = P.notification("aid/progress", params)
            with contextlib.suppress(RuntimeError):  # the loop is gone: we are exiting
                self.loop.call_soon_threadsafe(client.progress, rid, msg)

        return emit

    def _run(self, client: Client, rid: Any, call: Any) -> None:
        def work() -> None:
            try:
                msg = P.response(rid, call())
            except P.RpcError as exc:
                msg = P.error_response(rid, exc)
            except BactrianError as exc:
                msg = P.error_response(rid, P.RpcError(P.INTERNAL_ERROR, str(exc)))
            except Exception as exc:  # a bug: answered, logged, the server goes on
                log.exception("request %r failed", rid)
                msg = P.error_response(
                    rid,
                    P.RpcError(
                        P.INTERNAL_ERROR,
                        f"Internal error: {type(exc).__name__}. See the server log.",
                    ),
                )
            with contextlib.suppress(RuntimeError):  # the loop is gone: we are exiting
                self.loop.call_soon_threadsafe(client.answer, rid, msg)

        threading.Thread(target=work, daemon=True, name="aid-request").start()

    # ------------------------------------------------------------------ connections
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else -1
        self._ids += 1
        conn = Conn(uid=uid, user=_user_of(uid), id=self._ids)
        client = Client(self, writer, conn)
        if self.check_peer and uid != os.getuid():
            log.warning("refused a connection from uid %d", uid)
            client.send(
                P.error_response(
                    None,
                    P.RpcError(
                        P.FORBIDDEN,
                        f"Connection refused: uid {uid} is not the sidecar's owner (uid {os.getuid()}).",
                    ),
                )
            )
            await self._hang_up(client, reader)
            return
        if len(self.clients) >= self.sidecar.config.max_clients:
            client.send(
                P.error_response(
                    None,
                    P.RpcError(
                        P.BUSY, f"Too many clients ({len(self.clients)}, [aid] max_clients)."
                    ),
                )
            )
            await self._hang_up(client, reader)
            return
        self.clients.add(client)
        self.sidecar.clients = len(self.clients)
        frames = P.FrameReader(self.sidecar.config.max_frame_bytes)
        try:
            while not client.closed:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                frames.feed(data)
                try:
                    for msg in frames.messages():
                        self.dispatch(client, msg)
                except P.FrameError as exc:
                    client.send(P.error_response(None, exc))
                    await self._hang_up(client, reader)
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            self.clients.discard(client)
            self.sidecar.clients = len(self.clients)
            for pid in list(conn.inflight):
                self.sidecar.cancel(conn, {"proposalId": pid})  # nobody listens any more
            await self._close(client)

    async def _hang_up(self, client: Client, reader: asyncio.StreamReader) -> None:
        """After a last error frame: stop writing, then discard what the client still sends
        (up to 1 s / 1 MiB), so that closing does not reset the connection before the client
        has read the error."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.writer.drain(), 0.5)
            client.writer.write_eof()
        left, deadline = 1 << 20, self.loop.time() + 1.0
        with contextlib.suppress(Exception):
            while left > 0 and self.loop.time() < deadline:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), deadline - self.loop.time())
                if not data:
                    break
                left -= len(data)
        await self._close(client)

    async def _close(self, client: Client) -> None:
        client.closed = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.writer.drain(), 0.5)
        client.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.writer.wait_closed(), 0.5)

    # ------------------------------------------------------------------ life cycle
    def _reload(self) -> None:
        try:
            cfg = load_aid_config(self.config_path)
        except BactrianError as exc:
            log.error("SIGHUP: the new config is refused, the old one stays: %s", exc)
            return
        self.sidecar.reload(cfg)
        log.info("SIGHUP: config reloaded (server id %s)", self.sidecar.server_id)

    async def _shutdown(self, reason: str) -> None:
        retry = 50
        for client in list(self.clients):
            client.send(P.notification("aid/restarting", {"reason": reason, "retryAfterMs": retry}))
        self.sidecar.abort_all(retry)
        await asyncio.sleep(0)  # deliver the proposals' error events queued above
        err = P.restarting(retry)
        for client in list(self.clients):
            for rid in list(client.pending):
                client.answer(rid, P.error_response(rid, err))
        await asyncio.gather(*(self._close(c) for c in list(self.clients)), return_exceptions=True)

    def _owns_socket(self) -> bool:
        try:
            return self._inode is not None and self.layout.socket.lstat().st_ino == self._inode
        except OSError:
            return False

    async def _main(self, sock: socket.socket, ready: Any) -> None:
        self._stopping = asyncio.Event()
        reason = {"why": "shutdown"}

        def stop(why: str) -> None:
            reason["why"] = why
            assert self._stopping is not None
            self._stopping.set()

        self.loop.add_signal_handler(signal.SIGTERM, stop, "restart")
        self.loop.add_signal_handler(signal.SIGINT, stop, "shutdown")
        self.loop.add_signal_handler(signal.SIGHUP, self._reload)
        server = await asyncio.start_unix_server(self._handle, sock=sock, limit=READ_CHUNK)
        if ready is not None:
            ready()
        await self._stopping.wait()
        server.close()
        await self._shutdown(reason["why"])
        if self._owns_socket():
            with contextlib.suppress(OSError):
                self.layout.socket.unlink()

    def _info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "socket": str(self.layout.socket),
            "config": str(self.config_path) if self.config_path else None,
            "started": time.time(),
            "python": sys.executable,
            "serverId": self.sidecar.server_id,
        }

    def run(self, *, takeover: bool = False, ready: Any = None) -> None:
        """Serve until SIGTERM/SIGINT. ``takeover``: replace the running server (restart)."""
        self.layout.prepare()
        if takeover:
            sock = self._take_over()
        else:
            self.lock.acquire_or_fail()
            sock = bind_socket(self.layout.socket, self.socket_mode)  # a stale socket is reclaimed
            self._inode = self.layout.socket.lstat().st_ino
            self.layout.write_pid(self._info())
        watcher = None
        if self.sidecar.config.restart_on_upgrade:
            watcher = UpgradeWatcher(
                self.layout, self.config_path, self.sidecar.config.upgrade_check_s
            )
            watcher.start()
        try:
            self.loop.run_until_complete(self._main(sock, ready))
        finally:
            if watcher is not None:
                watcher.stop()
            self.sidecar.close()
            self.lock.release()
            self.loop.close()

    def _take_over(self) -> socket.socket:
        tmp = self.layout.socket.with_name(f".{self.layout.socket.name}.new-{os.getpid()}")
        sock = bind_socket(tmp, self.socket_mode)
        self._inode = tmp.lstat().st_ino
        os.replace(tmp, self.layout.socket)  # new connections reach this server from now on
        old = (self.layout.read_pid() or {}).get("pid")
        if isinstance(old, int) and old != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(old, signal.SIGTERM)
        deadline = time.monotonic() + 15.0
        while not self.lock.try_acquire():
            if time.monotonic() > deadline:
                if isinstance(old, int):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(old, signal.SIGKILL)
                deadline = time.monotonic() + 5.0
            time.sleep(0.01)
        self.layout.write_pid(self._info())
        return sock


def warm_models(config: AidConfig) -> list[str]:
    """The models a server loads before it serves: the default arm's and every arm's."""
    exp = active_experiment(config)
    models = [config.model] + ([a.model for a in exp.arms] if exp else [])
    return list(dict.fromkeys(models))


def serve(
    config: AidConfig,
    layout: Layout,
    *,
    config_path: Path | None = None,
    takeover: bool = False,
    warm: bool = True,
    socket_mode: int = 0o600,
    check_peer: bool = True,
    ready: Any = None,
) -> None:
    """Run a sidecar on ``layout.socket`` (the library call ``bactrian aid serve`` makes)."""
    if layout.socket.exists() and not takeover:
        # refuse early (before loading models) when a live server holds the socket
        probe_lock = ServerLock(layout)
        layout.prepare()
        if not probe_lock.try_acquire():
            probe_lock.acquire_or_fail()
        probe_lock.release()
    else:
        layout.prepare()
    sidecar = Sidecar(config, layout, config_path=config_path)
    if warm:
        try:
            for model in warm_models(config):
                sidecar.backend(model).count_tokens("warm")
        except BactrianError as exc:
            sidecar.close()
            raise AidError(
                f"The sidecar's model {config.model!r} cannot be loaded: {exc}"
            ) from None
    Server(
        sidecar, layout, config_path=config_path, socket_mode=socket_mode, check_peer=check_peer
    ).run(takeover=takeover, ready=ready)
