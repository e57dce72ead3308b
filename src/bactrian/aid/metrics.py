"""Every request, recorded in SQLite (``[aid] metrics_db``): who, which arm, which model and
strategy, time to first token, total latency, the sidecar's own overhead, context size,
whether the output was well formed, whether it applied (and the rung), the CES verdict when
checked, the user's feedback and its edit distance. No prompt or file content is stored.

The report (:mod:`bactrian.aid.report`) is derived from this table alone.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bactrian.aid.paths import AidError, private_dir
from bactrian.sqlite import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    proposal_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    user TEXT NOT NULL,
    experiment TEXT,
    arm TEXT NOT NULL,
    model TEXT NOT NULL,
    strategy TEXT NOT NULL,
    client TEXT,
    ttft_ms REAL,
    total_ms REAL,
    model_ms REAL,
    overhead_ms REAL,
    context_tokens INTEGER,
    context_files INTEGER,
    well_formed INTEGER,
    applies INTEGER,
    status TEXT NOT NULL,          -- final | error | cancelled
    error_code INTEGER,
    applied INTEGER,               -- apply was called and succeeded
    rung TEXT,                     -- the loosest rung apply used
    verdict TEXT,                  -- CES stage reached, when checked
    verdict_passed INTEGER,
    outcome TEXT,                  -- accepted | rejected | edited
    edit_distance INTEGER
);
CREATE INDEX IF NOT EXISTS requests_arm ON requests (experiment, arm);
"""


@dataclass
class RequestRecord:
    proposal_id: str
    ts: float
    user: str
    experiment: str | None
    arm: str
    model: str
    strategy: str
    client: str = ""
    ttft_ms: float | None = None
    total_ms: float | None = None
    model_ms: float | None = None
    overhead_ms: float | None = None
    context_tokens: int = 0
    context_files: int = 0
    well_formed: bool | None = None
    applies: bool | None = None
    status: str = "final"
    error_code: int | None = None
    applied: bool | None = None
    rung: str | None = None
    verdict: str | None = None
    verdict_passed: bool | None = None
    outcome: str | None = None
    edit_distance: int | None = None


COLUMNS = [f.name for f in fields(RequestRecord)]
OUTCOMES = ("accepted", "rejected", "edited")


class MetricsDB:
    """The metrics database; one connection, guarded by a lock (the server's threads share it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            private_dir(path.parent)
            self.db = open_wal(path, synchronous="NORMAL", schema=SCHEMA, shared=True)
        except sqlite3.Error as exc:
            raise AidError(
                f"Cannot open the AID metrics database {path}: {exc}. Check "
                "[aid] metrics_db, or remove a damaged file."
            ) from None
        self._lock = threading.Lock()

    def record(self, rec: RequestRecord) -> None:
        row = asdict(rec)
        cols = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        with self._lock:
            self.db.execute(
                f"INSERT OR REPLACE INTO requests ({cols}) VALUES ({marks})",
                [row[c] for c in COLUMNS],
            )

    def record_many(self, recs: list[RequestRecord]) -> None:
        cols = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        rows = [[getattr(r, c) for c in COLUMNS] for r in recs]
        with self._lock, self.db:
            self.db.executemany(f"INSERT OR REPLACE INTO requests ({cols}) VALUES ({marks})", rows)

    def update(self, proposal_id: str, **values: Any) -> bool:
        bad = set(values) - set(COLUMNS)
        if bad:
            raise ValueError(f"unknown metrics columns {sorted(bad)}")
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            cur = self.db.execute(
                f"UPDATE requests SET {sets} WHERE proposal_id = ?", [*values.values(), proposal_id]
            )
        return cur.rowcount > 0

    def rows(
        self, since: float | None = None, experiment: str | None = None
    ) -> list[dict[str, Any]]:
        q = f"SELECT {', '.join(COLUMNS)} FROM requests WHERE ts >= ?"
        args: list[Any] = [since or 0.0]
        if experiment is not None:
            q += " AND experiment IS ?"
            args.append(experiment)
        with self._lock:
            cur = self.db.execute(q + " ORDER BY ts", args)
            return [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]

    def close(self) -> None:
        with self._lock:
            self.db.close()


def now() -> float:
    return time.time()


def line_edit_distance(a: str, b: str) -> int:
    """Lines inserted plus lines deleted to turn ``a`` into ``b`` (a replaced line counts 2)."""
    al, bl = a.splitlines(), b.splitlines()
    # LCS length by dynamic programming over the shorter side; texts here are single files
    if len(al) < len(bl):
        al, bl = bl, al
    prev = [0] * (len(bl) + 1)
    for x in al:
        cur = [0]
        for j, y in enumerate(bl):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return len(al) + len(bl) - 2 * prev[-1]
