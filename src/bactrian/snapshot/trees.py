"""Writing a snapshot's trees in-process (the changed-files path of ``take_snapshot``).

The new tree is the last snapshot's tree with a few paths changed: only the directories along
those paths get new tree objects; every other subtree is reused by id. That is what
``git write-tree`` computes from the index, without its process (and its read of the whole
index). The old trees along the changed paths come from a small cache in the store
(``trees.sqlite``: the raw trees of the last snapshot; each is checked against its id when
read, so a damaged entry is a miss, never a wrong tree);
a miss refills the cache with every tree of the last snapshot (one ``git ls-tree -r -t``).

Anything unusual — say a path that turns from a file into a directory with files left on
both sides — raises :class:`TreeFallback` and the caller runs
``git write-tree`` instead. The caller writes the new trees with the new blobs as one small
pack (:func:`bactrian.snapshot.gitrepo.write_pack`), before the commit that refers to them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bactrian.snapshot.gitrepo import EMPTY_TREE, GitRepo
from bactrian.sqlite import open_wal

TREE_MODE = b"40000"

# path -> (mode, 20-byte object id) to set, or None to remove
Change = tuple[bytes, bytes] | None
Entries = dict[bytes, tuple[bytes, bytes]]


class TreeFallback(Exception):
    """A change the in-process tree writer does not handle; use ``git write-tree``."""


def parse_tree(raw: bytes) -> Entries:
    """name → (mode, 20-byte id) of a raw tree object's body."""
    entries: Entries = {}
    pos, n = 0, len(raw)
    while pos < n:
        sp = raw.index(b" ", pos)
        nul = raw.index(b"\0", sp)
        entries[raw[sp + 1 : nul]] = (raw[pos:sp], raw[nul + 1 : nul + 21])
        pos = nul + 21
    return entries


def _order(item: tuple[bytes, tuple[bytes, bytes]]) -> bytes:
    name, (mode, _) = item
    return name + b"/" if mode == TREE_MODE else name  # git sorts a tree as "name/"


def format_tree(entries: Entries) -> bytes:
    """The raw body of a tree object with ``entries``, in git's order."""
    return b"".join(
        b"%s %s\0%s" % (mode, name, oid)
        for name, (mode, oid) in sorted(entries.items(), key=_order)
    )


def tree_id(raw: bytes) -> str:
    return hashlib.sha1(b"tree %d\0" % len(raw) + raw).hexdigest()


class TreeCache:
    """Raw tree objects by id in ``<store>/trees.sqlite`` (derived data: deleting the file is
    safe; every tree read is checked against its id, so damage is a miss)."""

    def __init__(self, path: Path):
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            for attempt in (0, 1):
                try:
                    db = open_wal(  # a cache: a lost write is a miss
                        self.path,
                        timeout_s=5.0,
                        synchronous="OFF",
                        schema="CREATE TABLE IF NOT EXISTS trees (oid TEXT PRIMARY KEY, raw BLOB)",
                    )
                    self._db = db
                    break
                except sqlite3.Error:
                    if attempt:
                        raise
                    for suffix in ("", "-wal", "-shm"):  # unreadable: start afresh
                        with contextlib.suppress(OSError):
                            os.unlink(str(self.path) + suffix)
        assert self._db is not None
        return self._db

    def get(self, oid: str) -> bytes | None:
        try:
            row = self._conn().execute("SELECT raw FROM trees WHERE oid=?", (oid,)).fetchone()
        except sqlite3.Error:
            return None
        if row is None or not isinstance(row[0], bytes) or tree_id(row[0]) != oid:
            return None
        return row[0]

    def update(self, put: list[tuple[str, bytes]], drop: list[str]) -> None:
        """Add ``put`` and forget ``drop`` (trees the new snapshot replaced), in one
        transaction; failures are ignored (later misses)."""
        try:
            db = self._conn()
            db.execute("BEGIN")
            db.executemany("DELETE FROM trees WHERE oid=?", [(o,) for o in drop])
            db.executemany("INSERT OR REPLACE INTO trees VALUES (?, ?)", put)
            db.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                self._conn().execute("ROLLBACK")

    def fill(self, git: GitRepo, base: str) -> int:
        """Make the cache hold exactly the trees of ``base`` (one ``git ls-tree -r -t``; each
        tree is rebuilt from the listing and checked against its id). Returns their count."""
        out = git.run("ls-tree", "-r", "-t", "-z", "--full-tree", base).stdout
        dirs: dict[bytes, Entries] = {b"": {}}
        ids: dict[bytes, str] = {b"": base}
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, _, path = rec.partition(b"\t")
            mode, kind, hexid = meta.split(b" ")
            if kind == b"tree":
                mode = TREE_MODE  # listed as 040000, stored as 40000
                dirs.setdefault(path, {})
                ids[path] = hexid.decode()
            parent, _, name = path.rpartition(b"/")
            dirs.setdefault(parent, {})[name] = (mode, bytes.fromhex(hexid.decode()))
        rows = []
        for d, entries in dirs.items():
            raw = format_tree(entries)
            if tree_id(raw) == ids.get(d):  # else left out (should not happen): a later miss
                rows.append((ids[d], raw))
        try:
            db = self._conn()
            db.execute("BEGIN")
            db.execute("DELETE FROM trees")
            db.executemany("INSERT OR REPLACE INTO trees VALUES (?, ?)", rows)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise TreeFallback(f"tree cache {self.path}: {exc}") from exc
        return len(rows)

    def clear(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn().execute("DELETE FROM trees")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


@dataclass
class Built:
    """A tree built in-process: not written yet (the caller packs ``new`` with the blobs)."""

    root: str
    dirs: int  # directories looked at
    new: list[tuple[str, bytes]]  # (id, raw body) of each new tree
    replaced: list[str]  # old trees the new ones replace (dropped from the cache)


def _depth(d: bytes) -> int:
    return d.count(b"/") + 1 if d else 0


def _load_old(
    git: GitRepo, cache: TreeCache, base: str, dirs: list[bytes], fetch: bool
) -> dict[bytes, tuple[str | None, Entries]] | None:
    """The old tree id and entries of each directory in ``dirs`` (sorted shallow first); a
    directory the base tree lacks (or has as a file) is (None, {}). None on a cache miss when
    not ``fetch``."""
    if fetch:
        cache.fill(git, base)
    old: dict[bytes, tuple[str | None, Entries]] = {}
    for d in dirs:
        if not d:
            oid: str | None = base
        else:
            parent, _, name = d.rpartition(b"/")
            ent = old[parent][1].get(name)
            oid = ent[1].hex() if ent is not None and ent[0] == TREE_MODE else None
        if oid is None:
            old[d] = (None, {})
            continue
        raw = cache.get(oid)
        if raw is None:
            if fetch:
                raise TreeFallback(f"tree {oid} not found")
            return None
        old[d] = (oid, parse_tree(raw))
    return old


def build_tree(git: GitRepo, cache: TreeCache, base: str, changes: dict[bytes, Change]) -> Built:
    """The tree ``base`` with ``changes`` applied, computed here (nothing written)."""
    by_dir: dict[bytes, dict[bytes, Change]] = {}
    for path, change in changes.items():
        d, _, name = path.rpartition(b"/")
        up = d
        while up not in by_dir:  # the directory and all its ancestors
            by_dir[up] = {}
            if not up:
                break
            up = up.rpartition(b"/")[0]
        by_dir[d][name] = change
    dirs = sorted(by_dir, key=_depth)
    old = _load_old(git, cache, base, dirs, fetch=False)
    if old is None:
        old = _load_old(git, cache, base, dirs, fetch=True)
        assert old is not None
    children: dict[bytes, list[bytes]] = {}
    for d in dirs:
        if d:
            children.setdefault(d.rpartition(b"/")[0], []).append(d)
    new_trees: list[tuple[str, bytes]] = []
    replaced: list[str] = []
    result: dict[bytes, bytes | None] = {}  # dir -> new 20-byte id, None when it is now empty
    for d in reversed(dirs):  # deepest first
        old_oid, old_entries = old[d]
        entries = dict(old_entries)
        for name, change in by_dir[d].items():
            if change is None:
                cur = entries.pop(name, None)
                if cur is not None and cur[0] == TREE_MODE:
                    raise TreeFallback(f"removing {name!r}, a directory")
            else:
                entries[name] = change  # a file replacing a directory: its files go too
        for child in children.get(d, ()):
            name = child.rpartition(b"/")[2]
            cur = entries.get(name)
            new = result[child]
            if new is None:
                if cur is not None and cur[0] == TREE_MODE:
                    del entries[name]
            elif cur is not None and cur[0] != TREE_MODE:
                raise TreeFallback(f"{child!r} is both a file and a directory")
            else:
                entries[name] = (TREE_MODE, new)
        if not entries and d:
            result[d] = None
        elif old_oid is not None and entries == old_entries:
            result[d] = bytes.fromhex(old_oid)
        else:
            raw = format_tree(entries)
            oid = tree_id(raw)
            new_trees.append((oid, raw))
            result[d] = bytes.fromhex(oid)
        if old_oid is not None and result[d] != bytes.fromhex(old_oid):
            replaced.append(old_oid)  # keeps the cache to about one tree per directory
    root = result[b""]
    return Built(root.hex() if root is not None else EMPTY_TREE, len(dirs), new_trees, replaced)
