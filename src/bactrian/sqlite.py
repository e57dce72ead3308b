"""SQLite opened one way: autocommit (``isolation_level=None``; callers use ``with db:`` or
explicit transactions), write-ahead logging so readers never block the writer, a busy
timeout, and the schema applied. The snapshot index, the tree cache and the examples store
all open their databases here."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

Synchronous = Literal["OFF", "NORMAL", "FULL"]


def open_wal(
    path: Path | str,
    *,
    timeout_s: float = 30.0,
    synchronous: Synchronous | None = None,
    schema: str | None = None,
    shared: bool = False,
) -> sqlite3.Connection:
    """Open (creating) the database at ``path`` in WAL mode. ``synchronous``: ``"NORMAL"``
    for an index that can be rebuilt, ``"OFF"`` for a cache where a lost write is a miss, None
    to keep SQLite's default. ``shared``: the connection may be used from several threads
    (the caller serialises its use with a lock, as the AID sidecar does). Raises ``sqlite3.Error``; the caller turns it into its part's
    error with what to do."""
    db = sqlite3.connect(
        str(path), timeout=timeout_s, isolation_level=None, check_same_thread=not shared
    )
    try:
        db.execute("PRAGMA journal_mode=WAL")
        if synchronous is not None:
            db.execute(f"PRAGMA synchronous={synchronous}")
        if schema:
            db.executescript(schema)
    except sqlite3.Error:
        db.close()
        raise
    return db
