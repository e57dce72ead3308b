"""Checks on editor-style prompts: does it read like what a developer types (short, imperative,
no code blocks), and does it leak the answer (a copy of the new code, or identifiers the diff
introduces that the context lacks)?

A prompt may name the definitions the change adds — "add a to_string for t" is how people ask
for one — so new *top-level definition names* are allowed; other new identifiers (helpers,
locals, constructors the diff invents) are leaks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bactrian.mine.parts import DEFINITION
from bactrian.mine.textdiff import split_files

IMPERATIVE = frozenset(
    [
        "add",
        "adjust",
        "allow",
        "append",
        "avoid",
        "build",
        "call",
        "catch",
        "change",
        "check",
        "clean",
        "clear",
        "compute",
        "convert",
        "correct",
        "create",
        "define",
        "delete",
        "document",
        "drop",
        "enable",
        "expose",
        "extend",
        "extract",
        "factor",
        "fill",
        "filter",
        "finish",
        "fix",
        "format",
        "generalise",
        "generalize",
        "guard",
        "handle",
        "implement",
        "improve",
        "include",
        "inline",
        "introduce",
        "keep",
        "let",
        "log",
        "make",
        "merge",
        "move",
        "normalise",
        "normalize",
        "optimise",
        "optimize",
        "parse",
        "pass",
        "print",
        "propagate",
        "raise",
        "read",
        "refactor",
        "reject",
        "remove",
        "rename",
        "reorder",
        "replace",
        "report",
        "resolve",
        "restore",
        "return",
        "reuse",
        "rewrite",
        "round",
        "simplify",
        "sort",
        "split",
        "store",
        "support",
        "swap",
        "test",
        "tidy",
        "track",
        "turn",
        "undo",
        "unify",
        "update",
        "use",
        "validate",
        "wrap",
        "write",
    ]
)
STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "for",
        "to",
        "of",
        "in",
        "on",
        "at",
        "by",
        "with",
        "from",
        "into",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "is",
        "be",
        "add",
        "fix",
        "make",
        "use",
        "new",
        "old",
        "let",
        "type",
        "val",
        "module",
        "open",
        "end",
        "then",
        "else",
        "if",
        "match",
        "with",
        "fun",
        "function",
        "error",
        "errors",
        "value",
        "values",
        "test",
        "tests",
        "file",
        "files",
        "string",
        "int",
        "list",
        "option",
        "unit",
        "bool",
        "true",
        "false",
        "not",
        "when",
        "where",
        "what",
        "which",
    ]
)
MAX_PROMPT_CHARS = 160
MAX_PROMPT_WORDS = 24
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_']*")


def instruction(prompt: str) -> str:
    """The typed instruction: a prompt's first paragraph (fix prompts append diagnostics)."""
    return prompt.strip().split("\n\n", 1)[0].strip()


def prompt_problems(prompt: str) -> list[str]:
    """Why ``prompt`` does not read like an editor prompt ([] = fine)."""
    text = instruction(prompt)
    problems = []
    if not text:
        return ["empty prompt"]
    if "```" in prompt or "\n    " in text:
        problems.append("contains a code block")
    if "\n" in text:
        problems.append("instruction spans several lines")
    if len(text) > MAX_PROMPT_CHARS or len(text.split()) > MAX_PROMPT_WORDS:
        problems.append(f"too long ({len(text.split())} words, {len(text)} chars)")
    if len(text.split()) < 2:
        problems.append("too short")
    first = text.split()[0].lower().strip(",.:;!") if text.split() else ""
    if first not in IMPERATIVE:
        problems.append(f"not imperative (starts with {first!r})")
    return problems


def introduced_identifiers(diff: str, context_text: str) -> tuple[set[str], set[str]]:
    """(identifiers in added lines that neither the context nor the removed lines have,
    names of top-level definitions the diff adds)."""
    files = split_files(diff)
    known = set(_IDENT.findall(context_text))
    for f in files:
        for line in f.removed:
            known.update(_IDENT.findall(line))
    added: set[str] = set()
    defined: set[str] = set()
    for f in files:
        for line in f.added:
            added.update(_IDENT.findall(line))
            m = DEFINITION.match(line)
            if m and not line[:1].isspace():  # top-level definitions only
                defined.add(m.group(1))
    return added - known, defined


def leaks(prompt: str, diff: str, context_files: Iterable[str]) -> list[str]:
    """How ``prompt`` leaks the answer ([] = no leak)."""
    context_text = "\n".join(context_files)
    problems = []
    flat = " ".join(prompt.split())
    for f in split_files(diff):
        for line in f.added:
            code = " ".join(line.split())
            if len(code) >= 12 and code in flat:
                problems.append(f"copies new code: {code!r}")
    new_idents, defined = introduced_identifiers(diff, context_text)
    suspicious = {i for i in new_idents - defined if len(i) >= 3 and i.lower() not in STOPWORDS}
    for word in sorted(set(_IDENT.findall(prompt)) & suspicious):
        problems.append(f"names {word!r}, which only the new code introduces")
    return problems
