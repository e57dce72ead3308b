"""Finished proposals, kept in the server's private state directory so that ``apply``,
``feedback`` and ``cancel`` of a proposal made before a restart still work
(docs/aid-protocol.md, reconnect rule 4). Entries expire after ``[aid] proposal_ttl_s``."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bactrian.aid.paths import AidError
from bactrian.sqlite import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS proposals (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    body TEXT NOT NULL
);
"""


@dataclass
class Proposal:
    id: str
    root: str
    user: str
    diff: str = ""
    new_texts: dict[str, str] = field(default_factory=dict)  # path -> text after the diff
    status: str = "running"  # running | final | error | cancelled
    created: float = 0.0
    applied: bool = False


class ProposalStore:
    def __init__(self, path: Path, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        try:
            self.db = open_wal(path, synchronous="OFF", schema=SCHEMA, shared=True)
        except sqlite3.Error as exc:
            raise AidError(f"Cannot open the proposal store {path}: {exc}.") from None
        self._lock = threading.Lock()
        self.expire()

    def put(self, p: Proposal) -> None:
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO proposals (id, created, body) VALUES (?, ?, ?)",
                (p.id, p.created or time.time(), json.dumps(asdict(p))),
            )

    def get(self, pid: str) -> Proposal | None:
        with self._lock:
            row = self.db.execute(
                "SELECT body, created FROM proposals WHERE id = ?", (pid,)
            ).fetchone()
        if row is None or time.time() - float(row[1]) > self.ttl_s:
            return None
        data: dict[str, Any] = json.loads(row[0])
        return Proposal(**data)

    def expire(self) -> None:
        with self._lock:
            self.db.execute("DELETE FROM proposals WHERE created < ?", (time.time() - self.ttl_s,))

    def close(self) -> None:
        with self._lock:
            self.db.close()
