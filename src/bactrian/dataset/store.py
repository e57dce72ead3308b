"""Mined examples persist in SQLite (``data_dir()/mine/examples.sqlite``) so
``bactrian dataset build`` builds from everything mined so far, and ``bactrian describe``
updates prompts in place."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bactrian.config import data_dir
from bactrian.dataset.example import Example
from bactrian.diffs import exact_hash, normalised_hash
from bactrian.errors import MiningError
from bactrian.sqlite import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS examples (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    workspace TEXT NOT NULL,
    created_at REAL NOT NULL,
    exact_hash TEXT NOT NULL,
    near_hash TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    source TEXT NOT NULL,
    report TEXT NOT NULL
);
"""


def default_db_path() -> Path:
    return data_dir() / "mine" / "examples.sqlite"


class ExampleDB:
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = open_wal(self.path, schema=SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise MiningError(
                f"Cannot open the examples database {self.path}: {exc}. Check that the data "
                "directory (BACTRIAN_DATA_DIR) is writable."
            ) from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ExampleDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM examples")}

    def hashes(self) -> set[str]:
        out: set[str] = set()
        for ex, near in self.db.execute("SELECT exact_hash, near_hash FROM examples"):
            out.update(("x" + ex, "n" + near))
        return out

    def add(self, examples: Iterable[Example]) -> int:
        """Insert new examples (ids already stored are left as they are); returns how many."""
        rows = [_row(e) for e in examples]
        with self.db:
            before = self.count()
            self.db.executemany("INSERT OR IGNORE INTO examples VALUES (?,?,?,?,?,?,?,?)", rows)
            return self.count() - before

    def update(self, examples: Iterable[Example]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO examples VALUES (?,?,?,?,?,?,?,?)",
                [_row(e) for e in examples],
            )

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM examples").fetchone()[0])

    def all(self) -> list[Example]:
        rows = self.db.execute("SELECT body FROM examples ORDER BY created_at, id")
        return [Example.from_dict(json.loads(r[0])) for r in rows]

    def record_run(self, source: str, report: dict[str, Any]) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO runs (at, source, report) VALUES (?,?,?)",
                (time.time(), source, json.dumps(report)),
            )

    def reports(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT at, source, report FROM runs ORDER BY id")
        return [{"at": at, "source": src, "report": json.loads(rep)} for at, src, rep in rows]


def _row(e: Example) -> tuple[Any, ...]:
    return (
        e.id,
        e.kind,
        e.source,
        e.workspace,
        e.created_at,
        exact_hash(e.diff),
        normalised_hash(e.diff),
        e.to_json(),
    )
