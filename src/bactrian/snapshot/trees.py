"""Writing a snapshot's trees in-process (the changed-files path of ``take_snapshot``).

The new tree is the last snapshot's tree with a few paths changed: only the directories along
those paths get new tree objects; every other subtree is reused by id. That is what
``git write-tree`` computes from the index, without its process (and its read of the whole
index). The old trees along the changed paths come from a small cache in the store
(the loose tree objects written since the last packing, else ``trees/<id>``, filled from the
last snapshot's trees; each is checked against its id when read, so a damaged entry is a
miss, never a wrong tree);
a miss refills the cache with every tree of the last snapshot (one ``git ls-tree -r -t``).

Anything unusual — say a path that turns from a file into a directory with files left on
both sides — raises :class:`TreeFallback` and the caller runs
``git write-tree`` instead. The objects are written loose like git writes them, before the
commit that refers to them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from bactrian.snapshot.gitrepo import EMPTY_TREE, GitRepo, read_loose, write_object

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
    """Raw tree objects by id: loose tree objects of the store (the ones written since the
    last packing), else ``<store>/trees/<id>`` (derived data; deleting it is safe)."""

    def __init__(self, root: Path, git_dir: Path):
        self.root = root
        self.git_dir = git_dir

    def get(self, oid: str) -> bytes | None:
        path = os.path.join(self.root, oid)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError:
            loose = read_loose(self.git_dir, oid)
            return loose[1] if loose is not None and loose[0] == "tree" else None
        if tree_id(raw) != oid:  # damaged (e.g. a crash mid-write): a miss
            self.discard(oid)
            return None
        return raw

    def put(self, oid: str, raw: bytes) -> None:
        """Written in place: a torn file fails the id check on reading (a miss)."""
        try:
            self.root.mkdir(exist_ok=True)
            with open(os.path.join(self.root, oid), "wb") as fh:
                fh.write(raw)
        except OSError:
            pass  # a cache: a failed write is a later miss

    def discard(self, oid: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.root, oid))

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

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
        wanted = set()
        for d, entries in dirs.items():
            raw = format_tree(entries)
            oid = tree_id(raw)
            if oid != ids.get(d):
                continue  # not what git listed (should not happen): left out, a later miss
            wanted.add(oid)
            if not os.path.exists(os.path.join(self.root, oid)):
                self.put(oid, raw)
        with contextlib.suppress(OSError):
            for entry in os.listdir(self.root):
                if entry not in wanted:
                    self.discard(entry)
        return len(wanted)


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


def build_tree(
    git: GitRepo, git_dir: Path, cache: TreeCache, base: str, changes: dict[bytes, Change]
) -> tuple[str, int]:
    """Write the tree ``base`` with ``changes`` applied (blobs must already be written).
    Returns (the new root tree id, the number of directories looked at)."""
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
            oid = write_object(git_dir, "tree", raw)  # loose: read back from there
            result[d] = bytes.fromhex(oid)
        if old_oid is not None and result[d] != bytes.fromhex(old_oid):
            cache.discard(old_oid)  # keeps the cache to about one tree per directory
    root = result[b""]
    return (root.hex() if root is not None else EMPTY_TREE), len(dirs)
