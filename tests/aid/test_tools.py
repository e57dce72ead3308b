"""A team's tool, installed once from its own tiny package (an entry point in
``bactrian.aid_tools``), shows up in every client's ``tools/list`` and can be called."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bactrian.aid import protocol as P
from bactrian.aid.tools import Tool, ToolContext, ToolRegistry, validate
from tests.aid.conftest import SidecarProc

TOOL_MODULE = """
from bactrian.aid.tools import Tool


def _run(ctx, path: str) -> dict:
    text = (ctx.root / ctx.path(path)).read_text()
    return {"todo": [i + 1 for i, line in enumerate(text.splitlines()) if "TODO" in line]}


todos = Tool(
    "todos",
    "Line numbers of TODOs in a file.",
    {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    _run,
)
"""
PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "myteam-aid-tools"
version = "0.1"

[project.entry-points."bactrian.aid_tools"]
todos = "myteam_tools:todos"

[tool.setuptools]
py-modules = ["myteam_tools"]
"""


def test_an_installed_tool_package_reaches_every_client(
    tmp_path: Path, short_tmp: Path, workspace: Path
) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "myteam_tools.py").write_text(TOOL_MODULE)
    target = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(pkg),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    (workspace / "lib" / "other.ml").write_text("let x = 1\n(* TODO: y *)\nlet y = 2 (* TODO *)\n")
    sc = SidecarProc(
        short_tmp,
        workspace,
        env={"PYTHONPATH": f"{Path(__file__).resolve().parents[2] / 'src'}{os.pathsep}{target}"},
    ).start()
    try:
        for name in ("emacs", "nvim", "vscode"):
            with sc.client(name=name) as c:
                tools = {t["name"]: t for t in c.request("tools/list")["tools"]}
                assert tools["todos"]["source"] == "entry-point:myteam-aid-tools"
                assert tools["todos"]["inputSchema"]["required"] == ["path"]
                got = c.request(
                    "tools/call", {"name": "todos", "arguments": {"path": "lib/other.ml"}}
                )
                assert got == {"content": {"todo": [2, 3]}, "isError": False}
                with pytest.raises(P.RpcError) as err:
                    c.request(
                        "tools/call", {"name": "todos", "arguments": {"path": "../../etc/passwd"}}
                    )
                assert err.value.code == P.PATH_OUTSIDE_WORKSPACE
    finally:
        sc.stop()


def test_registry_validates_arguments_and_wraps_tool_failures(tmp_path: Path) -> None:
    def boom(ctx: ToolContext, n: int) -> int:
        raise RuntimeError(f"broken {n}")

    reg = ToolRegistry()
    reg.add(
        Tool(
            "boom",
            "fails",
            {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
                "additionalProperties": False,
            },
            boom,
        )
    )
    ctx = ToolContext(tmp_path)
    for args, code in [
        ({}, P.INVALID_PARAMS),
        ({"n": "1"}, P.INVALID_PARAMS),
        ({"n": True}, P.INVALID_PARAMS),
        ({"n": 1, "x": 2}, P.INVALID_PARAMS),
        ({"n": 1}, P.TOOL_ERROR),
        ([], P.INVALID_PARAMS),
    ]:
        with pytest.raises(P.RpcError) as err:
            reg.call("boom", args, ctx)
        assert err.value.code == code, args
    with pytest.raises(Exception, match="Two tools are named"):
        reg.add(Tool("boom", "again", {}, boom))
    validate({"type": "array", "items": {"type": "string"}}, ["a", "b"])


def test_the_model_calls_a_tool_during_a_proposal(short_tmp: Path, workspace: Path) -> None:
    from tests.aid.conftest import DIFF

    call = '<tool>{"name": "interface", "arguments": {"module": "Shape"}}</tool>'
    answers = [
        {"match": "Tool result (interface)", "text": DIFF},
        {"match": "to_string", "text": call},
    ]
    sc = SidecarProc(short_tmp, workspace, aid={"max_tool_calls": 2}, answers=answers).start()
    try:
        with sc.client() as c:
            evs = c.propose_wait({"prompt": "add a to_string", "file": {"path": "lib/shape.ml"}})
        tool = [e for e in evs if e["kind"] == "tool"]
        assert tool == [
            {
                "proposalId": evs[0]["proposalId"],
                "kind": "tool",
                "tool": "interface",
                "arguments": {"module": "Shape"},
                "ok": True,
            }
        ]
        assert evs[-1]["kind"] == "final" and evs[-1]["applies"]
        calls = [
            __import__("json").loads(line)["messages"]
            for line in sc.record.read_text().splitlines()
        ]
        assert len(calls) == 2
        assert "<tool>" in calls[0][0]["content"] and "interface" in calls[0][0]["content"]
        assert calls[1][-2] == {"role": "assistant", "content": call}
        assert (
            calls[1][-1]["content"].startswith("Tool result (interface):")
            and "lib/shape.mli" in calls[1][-1]["content"]
        )
    finally:
        sc.stop()
