"""The SQLite index of a workspace's snapshots (WAL). It is derived data: every row can be
rebuilt from the commits of the store repository (see ``Store.reindex``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from bactrian.errors import StoreError
from bactrian.sqlite import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    time REAL NOT NULL,
    tree_id TEXT NOT NULL,
    parent TEXT,
    state TEXT NOT NULL,
    duration_s REAL NOT NULL,
    changed_files INTEGER NOT NULL,
    build TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

COLUMNS = "seq, id, time, tree_id, parent, state, duration_s, changed_files, build"


class SnapshotIndex:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = open_wal(path, synchronous="NORMAL", schema=SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(
                f"Cannot open the snapshot index {path}: {exc}. If it is damaged, delete it and "
                "run `bactrian snapshot reindex WORKSPACE` to rebuild it from the store."
            ) from exc

    def close(self) -> None:
        self.db.close()

    def rows(self) -> list[tuple[Any, ...]]:
        return self.db.execute(f"SELECT {COLUMNS} FROM snapshots ORDER BY seq").fetchall()

    def last(self) -> tuple[Any, ...] | None:
        return self.db.execute(
            f"SELECT {COLUMNS} FROM snapshots ORDER BY seq DESC LIMIT 1"
        ).fetchone()

    def by_seq(self, seq: int) -> tuple[Any, ...] | None:
        return self.db.execute(f"SELECT {COLUMNS} FROM snapshots WHERE seq=?", (seq,)).fetchone()

    def by_prefix(self, prefix: str) -> list[tuple[Any, ...]]:
        return self.db.execute(
            f"SELECT {COLUMNS} FROM snapshots WHERE id LIKE ? ORDER BY seq", (prefix + "%",)
        ).fetchall()

    def insert(self, rec: dict[str, Any], meta: dict[str, str] | None = None) -> None:
        """One snapshot row (and ``meta`` updates) in one transaction."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                f"INSERT OR REPLACE INTO snapshots ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    rec["seq"],
                    rec["id"],
                    rec["time"],
                    rec["tree_id"],
                    rec["parent"],
                    rec["build"]["state"],
                    rec["build"].get("duration_s", 0.0),
                    rec["changed_files"],
                    json.dumps(rec["build"]),
                ),
            )
            for key, value in (meta or {}).items():
                self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
                )
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise StoreError(f"Cannot write the snapshot index {self.path}: {exc}.") from exc

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file and truncate it."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot checkpoint the snapshot index {self.path}: {exc}.") from exc

    def clear(self) -> None:
        self.db.execute("DELETE FROM snapshots")

    def get_meta(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
