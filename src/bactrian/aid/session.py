"""The sidecar's library: every JSON-RPC method is one method of :class:`Sidecar`, callable
by a test without a socket. The server (:mod:`bactrian.aid.server`) only frames, dispatches
and streams.

    sidecar = Sidecar(load_aid_config(), layout)
    conn = Conn(uid=os.getuid(), user="ada")
    sidecar.initialize(conn, {"protocolVersion": "1.0", "client": {...}, "workspaceRoot": root})
    pid = sidecar.propose(conn, {"prompt": "...", "file": {...}}, emit=print)["proposalId"]
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian import __version__
from bactrian.aid import protocol as P
from bactrian.aid import toolloop
from bactrian.aid.buildinfo import BuildCache
from bactrian.aid.change import describe_change
from bactrian.aid.checks import Checker, apply_check
from bactrian.aid.config import AidConfig, Arm
from bactrian.aid.context import ContextRequest, WorkspaceIndex, build_context, context_report
from bactrian.aid.experiments import arm_for
from bactrian.aid.metrics import OUTCOMES, MetricsDB, RequestRecord, line_edit_distance
from bactrian.aid.paths import Layout, workspace_path
from bactrian.aid.recent import RecentFiles
from bactrian.aid.retrieval import Retriever
from bactrian.aid.state import Proposal, ProposalStore
from bactrian.aid.tools import ToolContext, ToolRegistry, make_registry
from bactrian.errors import BactrianError
from bactrian.models import (
    Cancelled,
    CancelToken,
    ModelBackend,
    ModelConfig,
    make_backend,
    named_models,
    resolve_model,
)
from bactrian.strategies import get_strategy

log = logging.getLogger(__name__)
Emit = Callable[[dict[str, Any]], None]
TOKEN_COALESCE_S = 0.01
METHODS = [
    "initialize",
    "propose",
    "cancel",
    "apply",
    "feedback",
    "status",
    "describe",
    "tools/list",
    "tools/call",
]


@dataclass
class Conn:
    """One client connection's state (re-sent by the client after a reconnect)."""

    uid: int
    user: str
    id: int = 0
    root: Path | None = None
    client: str = ""
    experiment: str | None = None
    arm: Arm | None = None
    inflight: set[str] = field(default_factory=set)


@dataclass
class Running:
    id: str
    conn: Conn
    emit: Emit
    token: CancelToken = field(default_factory=CancelToken)
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finish(self, event: dict[str, Any]) -> bool:
        """Send the one terminal event (``final``/``error``/``cancelled``); later ones are dropped."""
        with self.lock:
            if self.done:
                return False
            self.done = True
        self.emit({"proposalId": self.id, **event})
        return True

    def progress(self, event: dict[str, Any]) -> None:
        if not self.done:
            self.emit({"proposalId": self.id, **event})


class Sidecar:
    def __init__(
        self, config: AidConfig, layout: Layout, *, config_path: Path | None = None
    ) -> None:
        self.config = config
        self.layout = layout
        self.config_path = config_path
        self.server_id = uuid.uuid4().hex[:12]
        self.started = time.time()
        self.metrics = MetricsDB(config.metrics_path())
        self.proposals = ProposalStore(layout.proposals, config.proposal_ttl_s)
        self.tools: ToolRegistry = make_registry(config.tools)
        self.checker = Checker(config)
        self._backends: dict[str, ModelBackend] = {}
        self._models: dict[str, ModelConfig] = {}
        self._lock = threading.Lock()
        self._running: dict[str, Running] = {}
        self._ids = itertools.count(1)
        self._indexes: dict[Path, WorkspaceIndex] = {}
        self._retrievers: dict[Path, Retriever] = {}
        self.builds = BuildCache(config)
        self.recent = RecentFiles(config.recent_files)
        self.clients = 0

    # ------------------------------------------------------------------ shared pieces
    def reload(self, config: AidConfig) -> None:
        """SIGHUP: new requests use ``config``; proposals in flight finish under the old one."""
        tools = make_registry(config.tools)
        with self._lock:
            self.config, self.tools = config, tools
            self._models.clear()
            self.server_id = uuid.uuid4().hex[:12]
            self.checker = Checker(config)
            self.builds.config = config  # the probe and its cache times
            self.recent = RecentFiles(config.recent_files)
            self._retrievers = {r: v for r, v in self._retrievers.items() if config.retrieval}

    def model_config(self, name: str) -> ModelConfig:
        with self._lock:
            cfg = self._models.get(name)
        if cfg is None:
            cfg = resolve_model(name)
            with self._lock:
                self._models[name] = cfg
        return cfg

    def backend(self, name: str) -> ModelBackend:
        cfg = self.model_config(name)
        key = f"{name}\0{cfg.backend}\0{cfg.path}\0{cfg.base_url}\0{cfg.model}"
        with self._lock:
            hit = self._backends.get(key)
        if hit is None:
            hit = make_backend(cfg)
            with self._lock:
                hit = self._backends.setdefault(key, hit)
        return hit

    def index(self, root: Path) -> WorkspaceIndex:
        with self._lock:
            return self._indexes.setdefault(root, WorkspaceIndex(root))

    def retriever(self, root: Path) -> Retriever:
        with self._lock:
            if root not in self._retrievers:
                self._retrievers[root] = Retriever(
                    root, self.layout.state, self.index(root), self.config.retrieval_files
                )
            return self._retrievers[root]

    def _require_init(self, conn: Conn) -> tuple[Path, Arm]:
        if conn.root is None or conn.arm is None:
            raise P.RpcError(P.NOT_INITIALIZED, "Send initialize first on this connection.")
        return conn.root, conn.arm

    def tool_context(self, root: Path) -> ToolContext:
        return ToolContext(root, self.index(root).files, lambda: self.builds.get(root, wait_s=5.0))

    # ------------------------------------------------------------------ methods
    def initialize(self, conn: Conn, params: dict[str, Any]) -> dict[str, Any]:
        P.check_version(P.get_str(params, "protocolVersion"))
        client = P.get_obj(params, "client", required=True)
        name = P.get_str(client, "name")
        root_s = P.get_str(params, "workspaceRoot")
        root = Path(os.path.realpath(root_s))
        if not os.path.isabs(root_s) or not root.is_dir():
            raise P.RpcError(
                P.PATH_OUTSIDE_WORKSPACE,
                f"workspaceRoot {root_s[:200]!r} is not an absolute path of a directory.",
            )
        user = P.get_str(params, "user", required=False, max_len=200) or conn.user
        cfg = self.config
        experiment, arm = arm_for(cfg, user)
        conn.root, conn.user, conn.client = root, user, f"{name}/{client.get('version', '')}"
        conn.experiment, conn.arm = experiment, arm
        self.index(root).files()
        self.builds.refresh_soon(root)
        if cfg.retrieval:
            self.retriever(root).refresh_soon()
        models = named_models()
        return {
            "protocolVersion": P.PROTOCOL_VERSION,
            "serverVersion": __version__,
            "serverId": self.server_id,
            "capabilities": {
                "methods": METHODS,
                "streaming": True,
                "tools": True,
                "ces": self.checker.available(),
                "retrieval": cfg.retrieval,
                "maxFrameBytes": cfg.max_frame_bytes,
            },
            "models": [
                {"name": n, "backend": m.backend, "strategy": m.strategy}
                for n, m in sorted(models.items())
            ],
            "arm": arm.to_dict(experiment) | {"strategy": self._strategy_name(arm)},
        }

    def _strategy_name(self, arm: Arm) -> str:
        try:
            return arm.strategy or self.model_config(arm.model).strategy
        except BactrianError:
            return arm.strategy or "unified-diff"

    def propose(self, conn: Conn, params: dict[str, Any], emit: Emit) -> dict[str, Any]:
        root, arm = self._require_init(conn)
        prompt = P.get_str(params, "prompt", max_len=64 * 1024)
        file = P.get_obj(params, "file")
        current = workspace_path(root, P.get_str(file, "path")) if file else ""
        text = file.get("text") if file else None
        if text is not None and not isinstance(text, str):
            raise P.RpcError(
                P.INVALID_PARAMS, "Parameter 'file.text' must be a string.", {"field": "file.text"}
            )
        for name in ("cursor", "selection"):
            P.get_obj(params, name)
        buffers = {workspace_path(root, p): t for p, t in P.get_buffers(params).items()}
        diags = P.get_list(params, "diagnostics") if "diagnostics" in params else None
        if diags is not None and not all(isinstance(d, dict) for d in diags):
            raise P.RpcError(
                P.INVALID_PARAMS,
                "diagnostics must be objects {file, line, message}.",
                {"field": "diagnostics"},
            )
        if len(conn.inflight) >= self.config.max_inflight:
            raise P.RpcError(
                P.BUSY,
                f"{len(conn.inflight)} proposals are in flight on this connection (max {self.config.max_inflight}): wait for one to end or cancel it.",
                {"max": self.config.max_inflight},
            )
        pid = f"p-{self.server_id[:6]}-{next(self._ids)}"
        run = Running(pid, conn, emit)
        with self._lock:
            self._running[pid] = run
        conn.inflight.add(pid)
        self.proposals.put(Proposal(pid, str(root), conn.user, created=time.time()))
        req = ContextRequest(
            root, prompt, current, text, buffers, diags if diags is not None else []
        )
        threading.Thread(
            target=self._run, args=(run, req, arm, diags is None), daemon=True, name=f"aid-{pid}"
        ).start()
        return {"proposalId": pid}

    def _run(self, run: Running, req: ContextRequest, arm: Arm, probe_diags: bool) -> None:
        conn, cfg = run.conn, self.config
        rec = RequestRecord(
            run.id, time.time(), conn.user, conn.experiment, arm.name, arm.model, "", conn.client
        )
        t0 = time.perf_counter()
        model_s = 0.0
        try:
            mcfg = self.model_config(arm.model)
            strategy = get_strategy(arm.strategy or mcfg.strategy)
            rec.strategy = strategy.name
            backend = self.backend(arm.model)
            if probe_diags:
                req.diagnostics = self.builds.diagnostics(req.root)
            budget = cfg.max_prompt_tokens or mcfg.max_prompt_tokens
            retrieve = self.retriever(req.root).search if cfg.retrieval else None
            ctx = build_context(
                req,
                self.index(req.root),
                max_bytes=cfg.max_file_bytes,
                token_room=budget,
                count=backend.count_tokens,
                recent=self.recent.get,
                retrieve=retrieve,
            )
            rendered = strategy.render(
                ctx.prompt_input(), count=backend.count_tokens, budget=budget
            )
            rec.context_tokens, rec.context_files = rendered.tokens, len(rendered.files_shown)
            run.progress(
                {
                    "kind": "context",
                    "files": context_report(
                        ctx, backend.count_tokens, rendered.files_shown, rendered.cut
                    ),
                    "cut": rendered.cut,
                    "promptTokens": rendered.tokens,
                    "budget": budget,
                    "diagnostics": len(ctx.diagnostics),
                    "model": arm.model,
                    "strategy": strategy.name,
                    "arm": arm.name,
                }
            )
            if cfg.log_content:
                log.info("proposal %s prompt %r", run.id, req.prompt)
            run.token.check()
            output, model_s, ttft = self._generate(
                run, backend, mcfg, rendered.messages, req.root, toolloop.tool_calls(cfg, strategy)
            )
            rec.ttft_ms = ttft * 1000 if ttft is not None else None
            parsed = strategy.parse(output, ctx.texts)
            result = (
                apply_check(req.root, parsed.diff, ctx.texts, cfg.max_file_bytes)
                if parsed.well_formed
                else None
            )
            verdict = None
            if arm.check and result is not None and result.applies:
                verdict = self.checker.judge(req.root, result.diff, run.token)
            rec.well_formed = parsed.well_formed
            rec.applies = bool(result and result.applies)
            if verdict is not None:
                rec.verdict, rec.verdict_passed = verdict.get("stage"), bool(verdict.get("passed"))
            total = time.perf_counter() - t0
            rec.total_ms, rec.model_ms, rec.overhead_ms = (
                total * 1000,
                model_s * 1000,
                (total - model_s) * 1000,
            )
            self.proposals.put(
                Proposal(
                    run.id,
                    str(req.root),
                    conn.user,
                    result.diff if result else "",
                    result.new_texts if result else {},
                    "final",
                    time.time(),
                )
            )
            final = {
                "kind": "final",
                "diff": result.diff if result else "",
                "wellFormed": parsed.well_formed,
                "applies": rec.applies,
                "lenient": bool(result and result.lenient),
                "files": result.files if result else [],
                "verdict": verdict,
                "error": parsed.error
                if not parsed.well_formed
                else (result.error if result else None),
                "timing": {
                    "ttftMs": rec.ttft_ms,
                    "modelMs": rec.model_ms,
                    "overheadMs": rec.overhead_ms,
                    "totalMs": rec.total_ms,
                },
            }
            rec.status = "final"
            self._end(run, rec, final)
        except Cancelled:
            rec.status = "cancelled"
            self._end(run, rec, {"kind": "cancelled"})
        except P.RpcError as exc:
            rec.status, rec.error_code = "error", exc.code
            self._end(
                run,
                rec,
                {
                    "kind": "error",
                    "code": exc.code,
                    "message": exc.message,
                    "retryable": exc.code == P.RESTARTING,
                },
            )
        except BactrianError as exc:
            rec.status, rec.error_code = "error", P.MODEL_ERROR
            self._end(
                run,
                rec,
                {"kind": "error", "code": P.MODEL_ERROR, "message": str(exc), "retryable": False},
            )
        except Exception as exc:  # a bug: the client gets an error, the server goes on
            log.exception("proposal %s failed", run.id)
            rec.status, rec.error_code = "error", P.INTERNAL_ERROR
            self._end(
                run,
                rec,
                {
                    "kind": "error",
                    "code": P.INTERNAL_ERROR,
                    "message": f"Internal error: {type(exc).__name__}",
                    "retryable": False,
                },
            )

    def _generate(
        self,
        run: Running,
        backend: ModelBackend,
        mcfg: ModelConfig,
        messages: list[dict[str, str]],
        root: Path,
        calls: int,
    ) -> tuple[str, float, float | None]:
        """The model's answer (text, seconds in the model, time to its first token), after
        at most ``calls`` tool calls (:mod:`bactrian.aid.toolloop`)."""
        if calls > 0:
            messages = toolloop.with_tools(messages, self.tools)
        model_s, ttft = 0.0, None
        while True:
            tm = time.perf_counter()
            stream = backend.stream(messages, mcfg.sampling(), cancel=run.token)
            self._stream_tokens(run, stream)
            model_s += time.perf_counter() - tm
            comp = stream.completion
            if comp is not None and comp.finish_reason == "cancelled":
                raise Cancelled("cancelled")
            run.token.check()
            output = comp.text if comp is not None else ""
            if ttft is None and comp is not None and comp.ttft_s is not None:
                ttft = comp.ttft_s
            call = toolloop.parse_call(output) if calls > 0 else None
            if call is None:
                return output, model_s, ttft
            calls -= 1
            name, args = call
            ok, result = toolloop.run_call(self.tools, self.tool_context(root), name, args)
            run.progress({"kind": "tool", "tool": name, "arguments": args, "ok": ok})
            messages = toolloop.follow_up(messages, output, name, ok, result)

    @staticmethod
    def _stream_tokens(run: Running, stream: Any) -> None:
        """Send the deltas as ``token`` events; deltas that come faster than one per
        :data:`TOKEN_COALESCE_S` are joined into one event (fewer frames, same text)."""
        pending, index, last = "", 0, 0.0
        for delta in stream:
            pending += delta
            now = time.perf_counter()
            if now - last >= TOKEN_COALESCE_S:
                run.progress({"kind": "token", "text": pending, "index": index})
                pending, index, last = "", index + 1, now
        if pending:
            run.progress({"kind": "token", "text": pending, "index": index})

    def _end(self, run: Running, rec: RequestRecord, event: dict[str, Any]) -> None:
        with self._lock:
            self._running.pop(run.id, None)
        run.conn.inflight.discard(run.id)
        if rec.total_ms is None:
            rec.total_ms = None
        try:
            self.metrics.record(rec)
        except Exception:  # metrics never break a proposal
            log.exception("recording metrics of %s failed", run.id)
        run.finish(event)

    def abort_all(self, retry_after_ms: int = 50) -> int:
        """Restart: every proposal in flight ends now with the retryable error."""
        with self._lock:
            runs = list(self._running.values())
        err = P.restarting(retry_after_ms)
        for run in runs:
            run.token.cancel()
            run.finish(
                {"kind": "error", "code": err.code, "message": err.message, "retryable": True}
            )
        return len(runs)

    def cancel(self, conn: Conn, params: dict[str, Any]) -> dict[str, Any]:
        pid = P.get_str(params, "proposalId", max_len=200)
        with self._lock:
            run = self._running.get(pid)
        if run is not None:
            run.token.cancel()
            return {"cancelled": True}
        if self.proposals.get(pid) is None:
            raise P.RpcError(
                P.UNKNOWN_PROPOSAL, f"Unknown proposal {pid!r}: propose again.", {"proposalId": pid}
            )
        return {"cancelled": False}

    def _proposal(self, conn: Conn, params: dict[str, Any]) -> tuple[Path, Proposal]:
        root, _ = self._require_init(conn)
        pid = P.get_str(params, "proposalId", max_len=200)
        prop = self.proposals.get(pid)
        if prop is None or Path(prop.root) != root:
            raise P.RpcError(
                P.UNKNOWN_PROPOSAL,
                f"Unknown proposal {pid!r} (never made here, or expired): propose again.",
                {"proposalId": pid},
            )
        if prop.status == "running":
            raise P.RpcError(
                P.UNKNOWN_PROPOSAL,
                f"Proposal {pid!r} has not finished yet: wait for its final event.",
                {"proposalId": pid},
            )
        return root, prop

    def apply(self, conn: Conn, params: dict[str, Any]) -> dict[str, Any]:
        root, prop = self._proposal(conn, params)
        target = params.get("target", "buffers")
        if target not in ("buffers", "files"):
            raise P.RpcError(
                P.INVALID_PARAMS, "target must be 'buffers' or 'files'.", {"field": "target"}
            )
        buffers = {workspace_path(root, p): t for p, t in P.get_buffers(params).items()}
        if not prop.diff:
            raise P.RpcError(
                P.APPLY_FAILED, f"Proposal {prop.id} holds no diff to apply.", {"files": []}
            )
        result = apply_check(
            root, prop.diff, buffers, self.config.max_file_bytes, write=target == "files"
        )
        if not result.applies:
            raise P.RpcError(
                P.APPLY_FAILED,
                f"The proposal's diff does not apply: {result.error}. Propose again.",
                {"files": result.files},
            )
        rungs = [h["rung"] for f in result.files for h in f["hunks"] if h.get("rung")]
        order = ["exact", "offset", "recount", "whitespace", "context", "fuzzy"]
        worst = max(rungs, key=lambda r: order.index(r) if r in order else len(order), default=None)
        self.metrics.update(prop.id, applied=True, rung=worst)
        return {
            "applied": True,
            "lenient": result.lenient,
            "files": result.files,
            "written": result.written,
        }

    def feedback(self, conn: Conn, params: dict[str, Any]) -> dict[str, Any]:
        _, prop = self._proposal(conn, params)
        outcome = P.get_str(params, "outcome")
        if outcome not in OUTCOMES:
            raise P.RpcError(
                P.INVALID_PARAMS,
                f"outcome must be one of {', '.join(OUTCOMES)}.",
                {"field": "outcome"},
            )
        final = P.get_obj(params, "finalText")
        if not all(isinstance(v, str) for v in final.values()):
            raise P.RpcError(
                P.INVALID_PARAMS, "finalText must map paths to texts.", {"field": "finalText"}
            )
        distance: int | None = 0 if outcome == "accepted" else None
        if final:
            distance = sum(
                line_edit_distance(prop.new_texts.get(p, ""), t) for p, t in final.items()
            )
        self.metrics.update(prop.id, outcome=outcome, edit_distance=distance)
        return {"recorded": True, "editDistance": distance}

    def status(self, conn: Conn, params: dict[str, Any]) -> dict[str, Any]:
        arm = conn.arm
        build = self.builds.get(conn.root, wait_s=2.0) if conn.root is not None else None
        with self._lock:
            inflight = len(self._running)
        return {
            "serverVersion": __version__,
            "protocolVersion": P.PROTOCOL_VERSION,
            "serverId": self.server_id,
            "pid": os.getpid(),
            "uptimeS": round(time.time() - self.started, 3),
            "model": arm.model if arm else self.config.model,
            "strategy": self._strategy_name(arm) if arm else (self.config.strategy or None),
            "arm": arm.name if arm else None,
            "experiment": conn.experiment,
            "build": build,
            "workspaceRoot": str(conn.root) if conn.root else None,
            "clients": self.clients,
            "inFlight": inflight,
        }

    def describe(self, conn: Conn, params: dict[str, Any]) -> dict[str, Any]:
        root, _ = self._require_init(conn)
        max_chars = P.get_int(params, "maxChars", 0) or 0
        return describe_change(root, self.builds.diagnostics(root), max_chars)

    def tools_list(self, conn: Conn, params: dict[str, Any]) -> dict[str, Any]:
        return {"tools": self.tools.list()}

    def tools_call(self, conn: Conn, params: dict[str, Any]) -> dict[str, Any]:
        root, _ = self._require_init(conn)
        name = P.get_str(params, "name", max_len=200)
        content = self.tools.call(name, params.get("arguments", {}), self.tool_context(root))
        return {"content": content, "isError": False}

    def close(self) -> None:
        self.abort_all()
        self.metrics.close()
        self.proposals.close()
        for b in self._backends.values():
            try:
                b.close()
            except Exception:
                log.debug("closing a backend failed", exc_info=True)
