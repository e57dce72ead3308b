"""The model's tool calls during a proposal: as many as the strategy declares
(``Strategy.tool_calls``, 0 for the built-in strategies, so the default prompt stays
byte-identical to training's), or ``[aid] max_tool_calls`` when set (>= 0) as an override.

When on, the system message gains a list of the tools and one rule: to call a tool, answer
with exactly one line ``<tool>{"name": ..., "arguments": {...}}</tool>``. The sidecar runs the
tool (the same registry editors reach with ``tools/call``), appends the call and its result to
the conversation, and asks again — at most ``max_tool_calls`` times; then the last answer is
parsed as the proposal.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bactrian.aid.config import AidConfig
from bactrian.aid.protocol import RpcError
from bactrian.aid.tools import ToolContext, ToolRegistry
from bactrian.strategies import Strategy

CALL = re.compile(r"^\s*<tool>\s*(\{.*\})\s*</tool>\s*$", re.DOTALL)
MAX_RESULT_CHARS = 8000


def tool_calls(cfg: AidConfig, strategy: Strategy) -> int:
    """How many tool calls a proposal may make: the config's override, else the strategy's."""
    if cfg.max_tool_calls >= 0:
        return cfg.max_tool_calls
    return max(0, int(getattr(strategy, "tool_calls", 0)))


def with_tools(messages: list[dict[str, str]], registry: ToolRegistry) -> list[dict[str, str]]:
    """``messages`` with the tool rule appended to the system message."""
    lines = [
        f"- {t['name']}: {t['description']} Arguments: {json.dumps(t['inputSchema'].get('properties', {}))}"
        for t in registry.list()
    ]
    rule = (
        "\n\nYou may call a tool before answering: reply with exactly one line "
        '<tool>{"name": "NAME", "arguments": {...}}</tool> and nothing else; its result comes '
        "back in the next message. Tools:\n" + "\n".join(lines)
    )
    out = [dict(m) for m in messages]
    if out and out[0]["role"] == "system":
        out[0]["content"] += rule
    else:
        out.insert(0, {"role": "system", "content": rule.strip()})
    return out


def parse_call(output: str) -> tuple[str, dict[str, Any]] | None:
    """The tool call an answer makes, or None when it is an ordinary answer."""
    m = CALL.match(output)
    if not m:
        return None
    try:
        call = json.loads(m.group(1))
    except ValueError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    args = call.get("arguments", {})
    return call["name"], args if isinstance(args, dict) else {}


def run_call(
    registry: ToolRegistry, ctx: ToolContext, name: str, args: dict[str, Any]
) -> tuple[bool, str]:
    """Run one call; the result (or the error) as the text the model reads next."""
    try:
        content = registry.call(name, args, ctx)
        return True, json.dumps(content, ensure_ascii=False)[:MAX_RESULT_CHARS]
    except RpcError as exc:
        return False, f"error: {exc.message}"


def follow_up(
    messages: list[dict[str, str]], output: str, name: str, ok: bool, result: str
) -> list[dict[str, str]]:
    return [
        *messages,
        {"role": "assistant", "content": output.strip()},
        {
            "role": "user",
            "content": f"Tool result ({name}{'' if ok else ', failed'}):\n```json\n{result}\n```",
        },
    ]
