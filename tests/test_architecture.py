"""The shape of the package: light imports for the core, and optional extras that fail with
what to install."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bactrian.errors import MissingExtraError
from bactrian.extras import HEAVY_MODULES, require

# every part's CLI module (and the sidecar's home): none may pull a heavy engine at import
LIGHT_MODULES = [
    "bactrian.cli",
    "bactrian.snapshot.cli",
    "bactrian.buildstatus.cli",
    "bactrian.diffs.cli",
    "bactrian.mine.cli",
    "bactrian.dataset.cli",
    "bactrian.ces.cli",
    "bactrian.sample.cli",
    "bactrian.train.cli",
    "bactrian.aid",
    "bactrian.aid.cli",
    "bactrian.aid.server",
    "bactrian.demo",
]


def _heavy_after_import(module: str) -> list[str]:
    code = (
        "import json, sys\n"
        f"import {module}\n"
        f"heavy = {list(HEAVY_MODULES)!r}\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_cli_modules_import_no_heavy_engine(module: str) -> None:
    assert _heavy_after_import(module) == []


def test_heavy_modules_are_installed_for_the_tests() -> None:
    # `make test` installs every extra: the suites that use them must run, not skip
    for module in HEAVY_MODULES:
        require(module)


def test_missing_extra_names_what_to_install() -> None:
    with pytest.raises(MissingExtraError, match=r"install bactrian\[ray\]"):
        require("bactrian_no_such_module_for_test", "ray")


# ---------------------------------------------------------------- the import graph

SRC = Path(__file__).resolve().parents[1] / "src"

# Each part may import only parts of lower layers (and itself). A part is a subpackage of
# bactrian, or one of its top-level modules. docs/architecture.md draws this table.
LAYERS: dict[str, int] = {
    "bactrian": 0,  # the package itself: its version
    "errors": 0,
    "config": 1,
    "registry": 1,
    "types": 1,
    "extras": 1,
    "progress": 1,
    "secrets": 1,
    "proc": 2,
    "sqlite": 2,
    "rayutil": 2,
    "vcs": 2,
    "diffs": 3,
    "buildstatus": 3,
    "models": 3,
    "dune": 4,
    "strategies": 4,
    "rundir": 4,
    "scopes": 5,
    "snapshot": 6,
    "dataset": 7,
    "sample": 7,
    "ces": 8,
    "mine": 9,
    "doctor": 10,
    "evaluate": 10,
    "aid": 10,
    "train": 11,  # above evaluate: its demo compares a model before and after training
    "demo": 12,
    "quickstart": 12,
    "cli": 12,
}
NOBODY_IMPORTS = {"aid"}  # the sidecar is a leaf: nothing else may depend on it
CLI_MODULES = {"bactrian.cli", "bactrian.demo"}  # and every part's ``cli`` module


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    line: int
    in_function: bool
    names: tuple[str, ...]


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "bactrian").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _edges(modules: dict[str, Path]) -> list[Edge]:
    """Every import of a bactrian module, at any depth (function-level included)."""
    edges = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        nested = {id(sub) for f in funcs for sub in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [(a.name, ()) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from a.b import c`: c is a module when a.b.c is one, else a name in a.b
                targets = []
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    targets.append((sub, ()) if sub in modules else (node.module, (a.name,)))
            else:
                continue
            for name, names in targets:
                dst = _resolve(name, modules) if name.startswith("bactrian") else None
                if dst and dst != mod:
                    edges.append(Edge(mod, dst, node.lineno, id(node) in nested, names))
    return edges


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "bactrian"


def _is_cli(module: str) -> bool:
    return module in CLI_MODULES or module.endswith(".cli")


def _cycles(edges: list[Edge]) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.src, set()).add(e.dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


MODULES = _modules()
EDGES = _edges(MODULES)


def test_every_part_has_a_layer() -> None:
    assert {_part(m) for m in MODULES} <= set(LAYERS), "add the new part to LAYERS (and docs)"


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(EDGES) == []


def test_parts_import_only_lower_layers() -> None:
    bad = [
        f"{e.src}:{e.line} imports {e.dst}"
        for e in EDGES
        if _part(e.src) != _part(e.dst)
        and (LAYERS[_part(e.dst)] >= LAYERS[_part(e.src)] or _part(e.dst) in NOBODY_IMPORTS)
    ]
    assert bad == []


def test_function_level_imports_only_in_cli_modules_or_for_extras() -> None:
    bad = []
    for mod, path in MODULES.items():
        if _is_cli(mod):
            continue
        for f in ast.walk(ast.parse(path.read_text())):
            if not isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(f):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                else:
                    continue
                if any(n.split(".")[0] not in HEAVY_MODULES for n in names):
                    bad.append(f"{mod}:{node.lineno} {ast.unparse(node)}")
    assert bad == []


def test_no_module_imports_another_modules_private_names() -> None:
    bad = [
        f"{e.src}:{e.line} imports {e.dst}.{n}"
        for e in EDGES
        for n in e.names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert bad == []


def test_the_checker_sees_cycles_layers_and_function_level_imports(tmp_path: Path) -> None:
    # the graph test cannot pass vacuously: it finds edges of each kind in a known tree
    assert any(e.in_function for e in EDGES)  # CLI modules import lazily
    assert _cycles([Edge("a", "b", 1, False, ()), Edge("b", "a", 2, True, ())]) == [["a", "b"]]
    assert any(e.src == "bactrian.mine.mining" and _part(e.dst) == "dataset" for e in EDGES)
