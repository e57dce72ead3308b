"""Rewrite one ``## `` section of ``docs/benchmarks.md`` (appended when it is not there yet)."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(title: str, section: str, docs: Path = DOCS) -> None:
    """Replace the section headed ``title`` (up to the next ``## ``) with ``section``."""
    text = docs.read_text()
    if title not in text:
        docs.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    start = text.index(title)
    nxt = text.find("\n## ", start + len(title))
    end = len(text) if nxt < 0 else nxt + 1
    docs.write_text(text[:start] + section + text[end:])
