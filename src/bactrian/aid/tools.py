"""Tools every editor gets: a Python callable plus a JSON schema, registered once.

Sources, in order: the built-ins (``interface``, ``typecheck``, ``tests_for``,
``build_status``), the ``bactrian.aid_tools`` entry points of installed packages, and
``[aid] tools = ["module:attribute", ...]``. An entry point or config entry names a
:class:`Tool` or a zero-argument function returning one (or a list of them)::

    # myteam_tools.py, with  [project.entry-points."bactrian.aid_tools"] lint = "myteam_tools:lint"
    from bactrian.aid.tools import Tool

    def _run(ctx, path: str) -> dict:
        text = (ctx.root / ctx.path(path)).read_text()
        return {"todo": [i + 1 for i, line in enumerate(text.splitlines()) if "TODO" in line]}

    lint = Tool("todos", "Line numbers of TODOs in a file.",
                {"type": "object", "properties": {"path": {"type": "string"}},
                 "required": ["path"]}, _run)

Editors call tools with ``tools/call``; a strategy that enables tool calls lets the model
call them during a proposal (``[aid] max_tool_calls``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bactrian.aid.context import read_text
from bactrian.aid.paths import workspace_path
from bactrian.aid.protocol import INVALID_PARAMS, TOOL_ERROR, UNKNOWN_TOOL, RpcError
from bactrian.errors import ConfigError
from bactrian.mine.context import is_test_path, module_stem

ENTRY_POINT_GROUP = "bactrian.aid_tools"
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


@dataclass
class ToolContext:
    """What a tool may use: the workspace root (a real path), the files the workspace index
    knows, and the build status."""

    root: Path
    files: Callable[[], list[str]] = list
    build: Callable[[], dict[str, Any]] = dict

    def path(self, rel: str) -> str:
        """``rel`` checked to stay inside the workspace (raises the protocol's -32012)."""
        return workspace_path(self.root, rel)


@dataclass
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    run: Callable[..., Any]
    source: str = "builtin"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
            "source": self.source,
        }


def validate(schema: dict[str, Any], value: Any, where: str = "arguments") -> None:
    """The JSON-schema subset tools use: type, properties, required, additionalProperties,
    enum, items."""
    tp = schema.get("type")
    if tp is not None:
        types = tp if isinstance(tp, list) else [tp]
        ok = any(
            isinstance(value, JSON_TYPES.get(t, (object,)))
            and not (t in ("integer", "number") and isinstance(value, bool))
            for t in types
        )
        if not ok:
            raise RpcError(INVALID_PARAMS, f"{where} must be of type {tp}.", {"field": where})
    if "enum" in schema and value not in schema["enum"]:
        raise RpcError(
            INVALID_PARAMS, f"{where} must be one of {schema['enum']}.", {"field": where}
        )
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                raise RpcError(
                    INVALID_PARAMS, f"{where}.{req} is required.", {"field": f"{where}.{req}"}
                )
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                raise RpcError(
                    INVALID_PARAMS,
                    f"{where} has unknown field(s) {', '.join(extra)}.",
                    {"field": where},
                )
        for k, sub in props.items():
            if k in value:
                validate(sub, value[k], f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(schema["items"], item, f"{where}[{i}]")


class ToolRegistry:
    def __init__(self) -> None:
        self.tools: dict[str, Tool] = {}

    def add(self, tool: Tool) -> None:
        if not isinstance(tool, Tool):
            raise ConfigError(f"{tool!r} is not a bactrian.aid.tools.Tool.")
        if tool.name in self.tools:
            raise ConfigError(
                f"Two tools are named {tool.name!r} ({self.tools[tool.name].source} and "
                f"{tool.source}): rename one."
            )
        self.tools[tool.name] = tool

    def list(self) -> list[dict[str, Any]]:
        return [self.tools[n].to_dict() for n in sorted(self.tools)]

    def call(self, name: str, arguments: Any, ctx: ToolContext) -> Any:
        tool = self.tools.get(name)
        if tool is None:
            raise RpcError(
                UNKNOWN_TOOL,
                f"Unknown tool {name!r}. Available: {', '.join(sorted(self.tools)) or '(none)'}.",
                {"tool": name},
            )
        if not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, "arguments must be an object.", {"field": "arguments"})
        validate(tool.input_schema, arguments)
        try:
            return tool.run(ctx, **arguments)
        except RpcError:
            raise
        except Exception as exc:  # a tool's own failure is the caller's error, not ours
            raise RpcError(
                TOOL_ERROR, f"Tool {name!r} failed: {type(exc).__name__}: {exc}", {"tool": name}
            ) from None


def _as_tools(obj: Any, source: str) -> list[Tool]:
    if callable(obj) and not isinstance(obj, Tool):
        obj = obj()
    items = obj if isinstance(obj, list | tuple) else [obj]
    out = []
    for t in items:
        if not isinstance(t, Tool):
            raise ConfigError(f"{source} gives {t!r}, not a bactrian.aid.tools.Tool.")
        t.source = source
        out.append(t)
    return out


def load_spec(spec: str) -> list[Tool]:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ConfigError(f"[aid] tools entry {spec!r} must be 'module:attribute'.")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"[aid] tools entry {spec!r} cannot be loaded: {exc}.") from None
    return _as_tools(obj, "config")


def entry_point_tools() -> list[Tool]:
    out = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else ep.value
        try:
            out.extend(_as_tools(ep.load(), f"entry-point:{dist}"))
        except Exception as exc:  # one broken plugin must not take the sidecar down
            raise ConfigError(
                f"The aid tool entry point {ep.name!r} ({ep.value}) fails to load: {exc}."
            ) from None
    return out


def make_registry(specs: Iterable[str] = ()) -> ToolRegistry:
    reg = ToolRegistry()
    for tool in builtin_tools():
        reg.add(tool)
    for tool in entry_point_tools():
        reg.add(tool)
    for spec in specs:
        for tool in load_spec(spec):
            reg.add(tool)
    return reg


# --------------------------------------------------------------------------- built-ins


def _module_files(ctx: ToolContext, module: str) -> list[str]:
    stem = module.split(".")[-1].lower()
    return [p for p in ctx.files() if Path(p).name.split(".", 1)[0].lower() == stem]


def _interface(ctx: ToolContext, module: str) -> dict[str, Any]:
    files = _module_files(ctx, module)
    mli = next((p for p in files if p.endswith(".mli")), None)
    if mli:
        return {"path": mli, "text": read_text(ctx.root, mli, 1 << 20) or "", "inferred": False}
    ml = next((p for p in files if p.endswith(".ml")), None)
    if ml is None:
        raise RpcError(
            TOOL_ERROR,
            f"No module {module!r} in the workspace (no .ml or .mli).",
            {"tool": "interface"},
        )
    ok, text = _infer(ctx.root, ml)
    return {"path": ml, "text": text, "inferred": True, "ok": ok}


def _infer(root: Path, ml: str, text: str | None = None) -> tuple[bool, str]:
    """``ocamlfind ocamlc -i`` of ``ml`` (or of ``text`` as ``ml``), in a scratch directory."""
    tool = shutil.which("ocamlfind")
    if tool is None:
        raise RpcError(
            TOOL_ERROR,
            "ocamlfind is not installed: apt-get install ocaml-findlib "
            "(or opam install ocamlfind).",
            {"tool": "interface"},
        )
    cmd = [tool, "ocamlc", "-i"]
    build = root / "_build" / "default" / Path(ml).parent
    if build.is_dir():
        cmd += ["-I", str(build)]
        cmd += [f"-I{d}" for d in sorted({str(p.parent) for p in build.glob("**/*.cmi")})]
    source = text if text is not None else read_text(root, ml, 1 << 20) or ""
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    with tempfile.TemporaryDirectory(dir=scratch, prefix="aid-infer-") as tmp:
        target = Path(tmp) / Path(ml).name
        target.write_text(source)
        proc = subprocess.run(
            [*cmd, str(target)], cwd=tmp, capture_output=True, text=True, timeout=60
        )
    if proc.returncode != 0:
        return False, proc.stderr.replace(str(target), ml)
    return True, proc.stdout


def _typecheck(ctx: ToolContext, path: str, text: str | None = None) -> dict[str, Any]:
    rel = ctx.path(path)
    if not rel.endswith((".ml", ".mli")):
        raise RpcError(
            TOOL_ERROR, f"{rel} is not an OCaml source (.ml/.mli).", {"tool": "typecheck"}
        )
    ok, out = _infer(ctx.root, rel, text)
    return {"path": rel, "ok": ok, "output": out}


def _tests_for(ctx: ToolContext, module: str) -> dict[str, Any]:
    stem = module.split(".")[-1].lower()
    tests = [p for p in ctx.files() if is_test_path(p) and module_stem(p) == stem]
    return {"module": module, "tests": tests}


def _build_status(ctx: ToolContext) -> dict[str, Any]:
    return ctx.build()


MODULE_SCHEMA = {
    "type": "object",
    "properties": {"module": {"type": "string"}},
    "required": ["module"],
    "additionalProperties": False,
}


def builtin_tools() -> list[Tool]:
    return [
        Tool(
            "interface",
            "A module's interface: its .mli, else the one ocamlc infers.",
            MODULE_SCHEMA,
            _interface,
        ),
        Tool(
            "typecheck",
            "Type-check one OCaml file (its unsaved text if given) with ocamlc -i.",
            {
                "type": "object",
                "properties": {"path": {"type": "string"}, "text": {"type": "string"}},
                "required": ["path"],
                "additionalProperties": False,
            },
            _typecheck,
        ),
        Tool("tests_for", "The test files of a module.", MODULE_SCHEMA, _tests_for),
        Tool(
            "build_status",
            "The workspace's build status and diagnostics, from the build probe.",
            {"type": "object", "properties": {}, "additionalProperties": False},
            _build_status,
        ),
    ]
