"""Hypothesis strategies: random small trees and random edits of them."""

from __future__ import annotations

from hypothesis import strategies as st

_WORDS = ["let", "x", "=", "in", "end", "(*", "*)", "fun", "->", "match", "with", "|", "1", ""]

line_text = st.lists(st.sampled_from(_WORDS), min_size=0, max_size=4).map(" ".join)
names = st.sampled_from(
    ["a.ml", "a.mli", "lib/b.ml", "lib/c.ml", "test/t.ml", "dune", "sp ace.ml", "caf\u00e9.ml"]
)


@st.composite
def file_content(draw: st.DrawFn) -> str:
    lines = draw(st.lists(line_text, min_size=0, max_size=12))
    eol = "\r\n" if draw(st.integers(0, 9)) == 0 else "\n"
    text = "".join(line + eol for line in lines)
    if text and draw(st.booleans()):
        text = text[: -len(eol)]  # no newline at end of file
    return text


@st.composite
def edit_content(draw: st.DrawFn, text: str) -> str:
    lines = text.split("\n")
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["insert", "delete", "change"]))
        pos = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "insert":
            lines.insert(pos, draw(line_text))
        elif op == "delete" and lines:
            del lines[pos]
        elif lines:
            lines[pos] = draw(line_text)
    out = "\n".join(lines)
    if draw(st.integers(0, 5)) == 0:
        out = out.rstrip("\n") if out.endswith("\n") else out + "\n"
    return out


@st.composite
def tree_and_edit(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, str]]:
    """(old tree, new tree): files modified, added, deleted, unchanged."""
    paths = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    old = {p: draw(file_content()) for p in paths}
    new: dict[str, str] = {}
    for p, text in old.items():
        fate = draw(st.sampled_from(["keep", "edit", "edit", "delete"]))
        if fate == "keep":
            new[p] = text
        elif fate == "edit":
            new[p] = draw(edit_content(text))
    for p in draw(st.lists(names, max_size=2, unique=True)):
        if p not in old:
            new[p] = draw(file_content())
    return old, new
