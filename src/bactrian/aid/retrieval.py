"""Lexical retrieval over a workspace (``[aid] retrieval = true``): an SQLite FTS5 index of
each source file's identifiers, ranked by BM25, rebuilt incrementally (only files whose size
or mtime changed are read again) in the background. Kept in the server's private state
directory, never in the workspace."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
from pathlib import Path

from bactrian.aid.context import WorkspaceIndex, read_text
from bactrian.sqlite import open_wal

log = logging.getLogger(__name__)
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_']{2,}")
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER);
CREATE VIRTUAL TABLE IF NOT EXISTS idents USING fts5(path UNINDEXED, words);
"""
STOP = {
    "let",
    "in",
    "the",
    "and",
    "for",
    "with",
    "match",
    "type",
    "module",
    "open",
    "fun",
    "function",
    "then",
    "else",
    "end",
}


def words(text: str) -> str:
    seen = dict.fromkeys(w for w in IDENT.findall(text))
    out = set()
    for w in seen:
        out.add(w)
        out.update(p for p in w.split("_") if len(p) > 2)
    return " ".join(sorted(out))


class Retriever:
    def __init__(self, root: Path, state: Path, index: WorkspaceIndex, limit: int = 3) -> None:
        self.root = root
        self.index = index
        self.limit = limit
        key = hashlib.sha256(str(root).encode()).hexdigest()[:16]
        self.db = open_wal(
            state / f"retrieval-{key}.sqlite", synchronous="OFF", schema=SCHEMA, shared=True
        )
        self.db_lock = threading.Lock()
        self._refreshing = False

    def refresh(self) -> int:
        """Re-read the files whose stat data changed; drop the ones gone. Returns how many
        files were (re)indexed."""
        with self.db_lock:
            known = {
                p: (s, m) for p, s, m in self.db.execute("SELECT path, size, mtime_ns FROM files")
            }
        changed = []
        present = set()
        for rel in self.index.files():
            try:
                st = os.stat(self.root / rel)
            except OSError:
                continue
            present.add(rel)
            if known.get(rel) != (st.st_size, st.st_mtime_ns):
                changed.append((rel, st.st_size, st.st_mtime_ns))
        gone = set(known) - present
        with self.db_lock, self.db:
            for rel in gone:
                self.db.execute("DELETE FROM files WHERE path = ?", (rel,))
                self.db.execute("DELETE FROM idents WHERE path = ?", (rel,))
            for rel, size, mtime in changed:
                text = read_text(self.root, rel, 512 * 1024) or ""
                self.db.execute("DELETE FROM idents WHERE path = ?", (rel,))
                self.db.execute(
                    "INSERT INTO idents (path, words) VALUES (?, ?)", (rel, words(text))
                )
                self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", (rel, size, mtime))
        self._refreshing = False
        return len(changed)

    def refresh_soon(self) -> None:
        if self._refreshing:
            return
        self._refreshing = True
        threading.Thread(target=self.refresh, daemon=True, name="aid-retrieval").start()

    def search(self, root: Path, prompt: str, exclude: list[str]) -> list[str]:
        self.refresh_soon()
        terms = [w for w in words(prompt).split() if w.lower() not in STOP][:32]
        if not terms:
            return []
        query = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        try:
            with self.db_lock:
                rows = self.db.execute(
                    "SELECT path FROM idents WHERE idents MATCH ? ORDER BY bm25(idents) LIMIT ?",
                    (query, self.limit + len(exclude)),
                ).fetchall()
        except sqlite3.Error as exc:
            log.debug("retrieval query failed: %s", exc)
            return []
        return [r[0] for r in rows if r[0] not in exclude][: self.limit]
