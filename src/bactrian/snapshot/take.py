"""Taking one snapshot: scan (git status against the store's index = the stat cache), stage
what changed, write the tree, run the build probe if the tree changed, then commit.

A small change is staged in-process (blobs and trees hashed here and written as one small
pack, then one ``git update-index --index-info``; see :mod:`bactrian.snapshot.trees`); others
by ``git update-index`` + ``git write-tree``.

Write order, so that ``kill -9`` at any moment leaves a consistent store: objects and the
index (each written to a temporary file and renamed, by git or here), then the commit object,
then the timeline ref (compare-and-swap, atomic rename), then the SQLite row. On open, the store adds
rows for any commit the ref has and SQLite lacks, so a restart continues the same timeline.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bactrian.buildstatus.probe import BuildConfig, BuildProbe, choose_probe
from bactrian.errors import BactrianError, StoreError, WorkspaceError
from bactrian.scopes import scoped_build_config
from bactrian.secrets import secret_in_content, secret_name
from bactrian.snapshot.config import SnapshotConfig, load_config
from bactrian.snapshot.gitrepo import (
    EMPTY_TREE,
    STORE_ATTRIBUTES,
    TIMELINE_REF,
    ZERO_OID,
    update_ref,
    write_commit,
    write_pack,
)
from bactrian.snapshot.health import note_build_health
from bactrian.snapshot.rules import build_rules, check_file
from bactrian.snapshot.store import Snapshot, Store, commit_message, open_at, resolve_workspace
from bactrian.snapshot.trees import Built, Change, TreeCache, TreeFallback, build_tree
from bactrian.types import BuildResult, BuildState

log = logging.getLogger(__name__)

STALE_LOCK_S = 1.0
MAINTAIN_OBJECTS = 2000
# In-process path: at most this many changed paths (more, e.g. the first snapshot: git's
# update-index and write-tree, faster in bulk)
FAST_MAX_PATHS = 500
FAST_MAX_BYTES = 32 << 20  # the changed files are held in memory for the pack
# After this many directories written in-process, ``git write-tree`` runs once more: it
# re-validates the index's cache-tree (which keeps ``git status`` from walking the whole last
# tree) and checks that git computes the same tree
CHECK_EVERY_DIRS = 100
# bumped when the secret checks change, so files skipped (or kept) before are looked at again
SECRETS_VERSION = 1


class NullProbe:
    """The ``none`` probe: no build at all; every snapshot's state is ``unknown``."""

    name = "none"

    def run(self, workspace: Path, tree_id: str | None = None) -> BuildResult:
        return BuildResult(BuildState.UNKNOWN, 0.0, log="no build probe configured", probe="none")


def resolve_probe(workspace: Path, config: SnapshotConfig) -> BuildProbe:
    """The probe the config asks for: a command probe when ``build_cmd`` is set, else
    ``probe`` (``"none"`` → :class:`NullProbe`)."""
    if config.build_cmd is None and config.probe == "none":
        return NullProbe()
    return choose_probe(
        workspace,
        probe="command" if config.build_cmd else config.probe,  # build_cmd overrides the probe
        build_cmd=config.build_cmd,
        timeout_s=config.build_timeout_s,
        # the scope `bactrian doctor` saved for the workspace narrows the dune probe
        config=scoped_build_config(workspace, BuildConfig.load()),
    )


@contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)


def _clear_stale_locks(store: Store) -> None:
    """Remove git lock files left behind by a killed or failed git process. We hold
    take.lock, so no snapshot of ours is writing; a lock may still belong to a git child that
    outlived its killed parent, so it gets ``STALE_LOCK_S`` to finish first."""
    candidates = [store.root / "index.lock", store.git_dir / "HEAD.lock"]
    candidates += [store.git_dir / (TIMELINE_REF + ".lock"), store.git_dir / "packed-refs.lock"]
    for lock in candidates:
        if not lock.exists():
            continue
        deadline = time.monotonic() + STALE_LOCK_S
        while lock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            lock.unlink()
            log.warning("removed stale lock %s", lock)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot remove stale lock %s: %s", lock, exc)


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True


class _SkipCache:
    """Files skipped on purpose, by path with (size, mtime, ctime): not re-read, logged once
    (a chmod or an edit changes ctime and gets the file looked at again)."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = path
        self.fingerprint = fingerprint  # settings the reasons depend on; a change drops all
        self.dirty = False
        self.items: dict[str, list[Any]] = {}
        try:
            data = json.loads(path.read_text())
            if data.get("fingerprint") == fingerprint:
                self.items = data["items"]
        except (OSError, ValueError, KeyError, AttributeError):
            pass

    def hit(self, key: str, st: os.stat_result | None) -> bool:
        item = self.items.get(key)
        return bool(item and st and item[:3] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns])

    def add(self, key: str, st: os.stat_result | None, reason: str) -> None:
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns] if st else [-1, -1, -1]
        self.items[key] = [*stamp, reason]
        self.dirty = True

    def save(self) -> None:
        if self.dirty:
            _write_if_changed(
                self.path, json.dumps({"fingerprint": self.fingerprint, "items": self.items})
            )


@dataclass
class _Entry:
    x: str  # index vs last snapshot ("." = same)
    y: str  # workspace vs index ("." = same, "?" = untracked)
    index_oid: str | None  # blob id in the index (= in the last snapshot when x == ".")
    path: bytes


_UNREADABLE_DIR = re.compile(rb"could not open directory '([^']*)': (.*)")


def _status(store: Store) -> tuple[list[_Entry], list[tuple[bytes, str]]]:
    """``git status --porcelain=v2`` against the store's index: only stat data is compared
    for unchanged files (the index is the stat cache); the untracked cache skips unchanged
    directories. Also returns the directories git could not open (path, why)."""
    proc = store.work_git.run(
        "status",
        "--porcelain=v2",
        "-z",
        "--untracked-files=all",
        "--no-renames",
        "--ignore-submodules=all",
    )
    out = proc.stdout
    unreadable = [
        (m.group(1), m.group(2).decode("utf-8", "replace").strip())
        for m in _UNREADABLE_DIR.finditer(proc.stderr)
    ]
    entries = []
    for rec in out.split(b"\0"):
        if rec.startswith(b"? "):
            entries.append(_Entry(".", "?", None, rec[2:]))
        elif rec.startswith(b"1 "):
            parts = rec.split(b" ", 8)
            xy = parts[1].decode()
            entries.append(_Entry(xy[0], xy[1], parts[7].decode(), parts[8]))
        elif rec[:2] in (b"2 ", b"u "):  # not expected with --no-renames and our own index
            parts = rec.split(b" ")
            entries.append(_Entry("M", "M", None, parts[-1]))
    return entries, unreadable


def _special_files(wsb: bytes, dirs: set[bytes]) -> list[tuple[bytes, os.stat_result]]:
    """Files in ``dirs`` (relative, ``b""`` = the root) that are neither regular files, links
    nor directories (FIFOs, sockets, devices): git skips them without a word."""
    found = []
    for d in sorted(dirs):
        try:
            with os.scandir(os.path.join(wsb, d) if d else wsb) as it:
                for ent in it:
                    if ent.name == b".git":
                        continue
                    st = ent.stat(follow_symlinks=False)
                    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) and not (
                        stat.S_ISDIR(st.st_mode)
                    ):
                        found.append((os.path.join(d, ent.name) if d else ent.name, st))
        except OSError:
            continue
    return found


def _all_dirs(wsb: bytes, config_ignore: list[str]) -> set[bytes]:
    """Every directory of the workspace but ``.git`` and the configured ignored ones (for the
    first snapshot's look for special files)."""
    skip = {os.fsencode(p.strip("/")) for p in config_ignore if p.endswith("/") and "*" not in p}
    skip.add(b".git")
    out: set[bytes] = set()
    for root, dirs, _ in os.walk(wsb):
        dirs[:] = [d for d in dirs if d not in skip]
        out.add(os.path.relpath(root, wsb) if root != wsb else b"")
    return out


def _read(path: bytes, st: os.stat_result) -> bytes | None:
    """The content git records for a file (a symlink: its target); None if unreadable."""
    try:
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(path)
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _blob_id(path: bytes, st: os.stat_result) -> str | None:
    """The git blob id of a file (or symlink) as it is now; None if it cannot be read."""
    data = _read(path, st)
    return None if data is None else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _mode(st: os.stat_result) -> bytes:
    """The tree mode git gives a file (``core.filemode`` is on in the store)."""
    if stat.S_ISLNK(st.st_mode):
        return b"120000"
    return b"100755" if st.st_mode & 0o100 else b"100644"


@dataclass
class _InProcess:
    """A small change staged in-process: the exact changes vs the last snapshot's tree, the
    new blobs, and the ``update-index --index-info`` input (not run yet)."""

    changes: dict[bytes, Change]
    blobs: list[bytes]
    index_info: bytes


@dataclass
class _Staged:
    dirty: bool  # the index may now differ from the last snapshot
    staged: int  # files staged
    changed: int | None  # files whose content changed vs the last snapshot; None if unknown
    pending: _InProcess | None = None  # set: the index is not updated yet (see _write_in_process)


def _prepare_in_process(
    wsb: bytes,
    add: list[tuple[bytes, bool, str | None, os.stat_result]],
    remove: list[bytes],
) -> tuple[_InProcess, int]:
    """Read the files of ``add`` (path, tracked, blob id in the last snapshot, lstat) and hash
    them here. Returns (the pending change, files whose content changed)."""
    changes: dict[bytes, Change] = dict.fromkeys(remove)
    changed = len(remove)
    zero = ZERO_OID.encode()
    lines = [b"0 %s\t%s\0" % (zero, p) for p in remove]
    blobs: list[bytes] = []
    for path, tracked, old_oid, st in add:
        data = _read(os.path.join(wsb, path), st)
        why = secret_in_content(data) if data is not None and not stat.S_ISLNK(st.st_mode) else None
        if why:  # became a secret between the check and this read
            log.warning(
                "%s: skipped %s: secret (content %s)",
                wsb.decode(errors="replace"),
                os.fsdecode(path),
                why,
            )
            data = None
        if data is None:  # vanished or unreadable since the check: as if deleted
            if tracked:
                changes[path] = None
                changed += 1
                lines.append(b"0 %s\t%s\0" % (zero, path))
            continue
        oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blobs.append(data)
        mode = _mode(st)
        changes[path] = (mode, bytes.fromhex(oid))
        lines.append(b"%s %s\t%s\0" % (mode, oid.encode(), path))
        if not tracked or oid != old_oid:
            changed += 1
    return _InProcess(changes, blobs, b"".join(lines)), changed


def _write_in_process(store: Store, base: str, pending: _InProcess) -> tuple[str, int] | None:
    """Build the new tree here, write it with the new blobs as one small pack, then update the
    index in one ``git update-index --index-info`` (its entries carry no stat data, so the
    next ``git status`` compares those files' content once and stores their stat data).
    Returns (tree id, directories looked at), or None when the tree is left to git's
    ``write-tree`` (the blobs are written and the index updated either way)."""
    cache = TreeCache(store.root / "trees.sqlite")
    try:
        try:
            built: Built | None = build_tree(store.git, cache, base, pending.changes)
        except (TreeFallback, StoreError) as exc:
            log.info("%s: tree written by git instead (%s)", store.workspace, exc)
            built = None
        objects = [("blob", data) for data in pending.blobs]
        objects += [("tree", raw) for _, raw in built.new] if built else []
        if objects:
            write_pack(store.git_dir, objects)
        store.work_git.run(
            "update-index", "--add", "--replace", "-z", "--index-info", input=pending.index_info
        )
        if built is None:
            return None
        cache.update(built.new, built.replaced)
        return built.root, built.dirs
    finally:
        cache.close()


def _update_index(store: Store, paths: list[bytes], flags: list[str]) -> None:
    """Stage ``paths`` in one git call; if that fails (a file vanished or became unreadable
    between the check and git's read), stage them one by one and skip the failures."""
    if not paths:
        return
    try:
        store.work_git.run("update-index", *flags, "-z", "--stdin", input=b"\0".join(paths) + b"\0")
        return
    except StoreError:
        pass
    for p in paths:
        proc = store.work_git.run(
            "update-index", *flags, "-z", "--stdin", input=p + b"\0", check=False
        )
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            log.warning(
                "%s: skipped %s: %s", store.workspace, os.fsdecode(p), err[-1] if err else "error"
            )


def _stage(store: Store, in_process: bool) -> _Staged:
    """Bring the store's index up to date with the workspace. ``in_process``: the last
    snapshot exists, so a small change may take the in-process path (:class:`_Staged`)."""
    ws = store.workspace
    wsb = os.fsencode(ws)
    rules = build_rules(ws, store.config)
    rules_changed = _write_if_changed(store.git_dir / "info" / "exclude", rules.exclude_text)
    _write_if_changed(store.git_dir / "info" / "attributes", STORE_ATTRIBUTES)
    entries, unreadable = _status(store)
    secrets = list(store.config.secret_patterns)
    fingerprint = f"max_file_bytes={store.config.max_file_bytes};secrets={SECRETS_VERSION}:" + (
        hashlib.sha1("\0".join(secrets).encode()).hexdigest()
    )
    skips = _SkipCache(store.root / "skipped.json", fingerprint)
    for rel, why in unreadable:
        key = "dir:" + rel.decode("utf-8", "surrogateescape")
        if key not in skips.items:
            log.warning("%s: skipped directory %s: cannot read: %s", ws, key[4:], why)
            skips.add(key, None, f"cannot read: {why}")
    live_dirs = {b"dir:" + rel for rel, _ in unreadable}
    for key in [k for k in skips.items if k.startswith("dir:")]:
        if key.encode("utf-8", "surrogateescape") not in live_dirs:
            skips.items.pop(key)  # readable again: logged again if it closes once more
            skips.dirty = True
    # git lists no FIFOs, sockets or devices: look for them where something changed (the
    # whole tree on the first snapshot) so that each gets its one log line
    look_in = (
        _all_dirs(wsb, store.config.ignore)
        if not in_process
        else {os.path.dirname(e.path.rstrip(b"/")) for e in entries if e.y != "."}
    )
    specials = _special_files(wsb, look_in)
    if specials:  # not those the ignore rules hide anyway
        proc = store.work_git.run(
            "check-ignore",
            "-z",
            "--stdin",
            input=b"\0".join(p for p, _ in specials) + b"\0",
            check=False,
        )
        hidden = set(proc.stdout.split(b"\0"))
        specials = [(p, st_) for p, st_ in specials if p not in hidden]
    for rel_special, st_special in specials:
        key = rel_special.decode("utf-8", "surrogateescape")
        if not skips.hit(key, st_special):
            log.warning("%s: skipped %s: not a regular file", ws, key)
            skips.add(key, st_special, "not a regular file")
    add: list[tuple[bytes, bool, str | None, os.stat_result]] = []
    remove: list[bytes] = []
    force_remove: list[bytes] = []
    index_ahead = False
    for e in entries:
        path, tracked = e.path, e.y != "?"
        if e.x != ".":
            index_ahead = True  # the index is ahead of the last snapshot (an interrupted one)
        if e.y == ".":
            continue
        if os.path.basename(path) in (b".gitignore", b".hgignore"):
            rules_changed = True
        if e.y == "D":
            remove.append(path)
            continue
        key = path.decode("utf-8", "surrogateescape")
        if not tracked and rules.hg_regexps and rules.hg_ignored(key):
            continue
        try:
            st: os.stat_result | None = os.lstat(os.path.join(wsb, path.rstrip(b"/")))
        except OSError:
            st = None
        if skips.hit(key, st):
            if tracked:
                force_remove.append(path)
            continue
        reason, st = check_file(ws, path, store.config.max_file_bytes, secrets)
        if reason == "vanished":
            if tracked:
                remove.append(path)
            continue
        if reason is not None or st is None:
            log.warning(
                "%s: skipped %s: %s", ws, key.encode("utf-8", "backslashreplace").decode(), reason
            )
            skips.add(key, st, reason or "cannot stat")
            if tracked:
                force_remove.append(path)
            continue
        skips.items.pop(key, None)
        add.append((path, tracked, e.index_oid, st))
    ignored: list[bytes] = []
    if rules_changed:
        out = store.work_git.run("ls-files", "-z", "-c", "-i", "--exclude-standard").stdout
        ignored = [p for p in out.split(b"\0") if p]
        # secret names re-included by a negation and recorded before: out of the index too
        out = store.work_git.run("ls-files", "-z", "-c").stdout
        known = set(ignored) | set(force_remove)
        ignored += [
            p
            for p in out.split(b"\0")
            if p and p not in known and secret_name(p.decode("utf-8", "replace"), secrets)
        ]
    # only skipped files (say an untracked binary) in the status output: no write-tree needed
    dirty = bool(add or remove or force_remove or ignored) or index_ahead
    n_paths = len(add) + len(remove) + len(force_remove)
    small = n_paths <= FAST_MAX_PATHS and sum(a[3].st_size for a in add) <= FAST_MAX_BYTES
    if in_process and dirty and not index_ahead and not ignored and small:
        pending, n_changed = _prepare_in_process(wsb, add, remove + force_remove)
        skips.save()
        return _Staged(True, len(add), n_changed, pending)
    changed: int | None = None
    if not (index_ahead or ignored):
        changed = len(remove) + len(force_remove)
        for path, tracked, old_oid, fst in add:
            if not tracked or _blob_id(os.path.join(wsb, path), fst) != old_oid:
                changed += 1
    _update_index(store, remove + [a[0] for a in add], ["--add", "--remove", "--replace"])
    _update_index(store, force_remove + ignored, ["--force-remove"])
    skips.save()
    return _Staged(dirty, len(add), changed)


def _run_probe(probe: BuildProbe, workspace: Path, tree_id: str) -> BuildResult:
    try:
        return probe.run(workspace, tree_id)
    except BactrianError as exc:
        log.warning("%s: build probe %s failed: %s", workspace, getattr(probe, "name", "?"), exc)
        return BuildResult(BuildState.UNKNOWN, 0.0, log=str(exc), probe=getattr(probe, "name", ""))
    except Exception as exc:  # a broken probe must not stop the recording
        log.exception("%s: build probe crashed", workspace)
        return BuildResult(
            BuildState.UNKNOWN, 0.0, log=f"probe crashed: {exc!r}", probe=getattr(probe, "name", "")
        )


def record(store: Store, probe: BuildProbe | None = None, now: float | None = None) -> Snapshot:
    """Take one snapshot into an open store (the daemon keeps its store open between ticks)."""
    with file_lock(store.root / "take.lock"):
        store.reconcile()
        _clear_stale_locks(store)
        last = store.last()
        st = _stage(store, in_process=last is not None)
        changed = st.changed
        if last is not None and not st.dirty:
            return last
        dirs = int(store.db.get_meta("dirs_since_write_tree", "0") or 0)
        tree = None
        if last is not None and st.pending is not None:
            tree = _write_in_process(store, last.tree_id, st.pending)
        if tree is not None:
            dirs += tree[1]
        if tree is None or dirs >= CHECK_EVERY_DIRS:
            git_tree = store.work_git.out("write-tree").strip()
            if tree is not None and tree[0] != git_tree:
                log.error(
                    "%s: the in-process tree %s differs from git write-tree %s; using git's",
                    store.workspace,
                    tree[0],
                    git_tree,
                )
                cache = TreeCache(store.root / "trees.sqlite")
                cache.clear()
                cache.close()
            tree, dirs = (git_tree, 0), 0
        tree_id = tree[0]
        if last is not None and tree_id == last.tree_id:
            return last
        if changed is None or last is None:
            diff = store.git.run(
                "diff-tree",
                "-r",
                "-z",
                "--no-renames",
                "--name-only",
                last.tree_id if last else EMPTY_TREE,
                tree_id,
            ).stdout
            changed = sum(1 for p in diff.split(b"\0") if p)
        if probe is None:
            probe = resolve_probe(store.workspace, store.config)
        build = _run_probe(probe, store.workspace, tree_id)
        when = time.time() if now is None else float(now)
        seq = last.seq + 1 if last else 1
        rec = {
            "seq": seq,
            "time": when,
            "workspace": str(store.workspace),
            "changed_files": changed,
            "build": build.to_dict(),
        }
        parent = last.id if last else None
        commit = write_commit(store.git_dir, tree_id, parent, int(when), commit_message(rec))
        update_ref(store.git_dir, commit, parent)
        rec.update(id=commit, tree_id=tree_id, parent=last.id if last else None)
        snaps = int(store.db.get_meta("snapshots_since_pack", "0") or 0) + 1
        objects = int(store.db.get_meta("objects_since_pack", "0") or 0) + st.staged
        meta = {"snapshots_since_pack": str(snaps), "objects_since_pack": str(objects)}
        store.db.insert(rec, {**meta, "dirs_since_write_tree": str(dirs)})
        if snaps >= store.config.repack_every or objects >= MAINTAIN_OBJECTS:
            try:
                store.maintain()
            except BactrianError as exc:
                log.warning(
                    "%s: packing the store failed (retried later): %s", store.workspace, exc
                )
            cache = TreeCache(store.root / "trees.sqlite")
            try:  # the last tree's trees, no stale ones (cheap next to the packing)
                cache.fill(store.git, tree_id)
            except (TreeFallback, StoreError) as exc:
                log.warning("%s: tree cache not refilled: %s", store.workspace, exc)
            finally:
                cache.close()
        snap = Snapshot(
            seq=seq,
            id=commit,
            workspace=str(store.workspace),
            time=when,
            tree_id=tree_id,
            parent=last.id if last else None,
            build=build,
            changed_files=changed,
        )
        try:  # a one-time warning when the workspace has never been green
            note_build_health(store, snap)
        except (BactrianError, OSError, sqlite3.Error) as exc:
            log.debug("%s: build health not noted: %s", store.workspace, exc)
        return snap


def open_for_writing(workspace: Path | str, config: SnapshotConfig | None = None) -> Store:
    """The store of ``workspace``, created on first use."""
    config = config or load_config()
    ws = resolve_workspace(workspace)
    store_dir = config.resolved_store_dir()
    store_dir = store_dir.resolve() if store_dir.exists() else store_dir.absolute()
    if store_dir.is_relative_to(ws):
        raise WorkspaceError(
            f"The snapshot store {store_dir} is inside the workspace {ws}; bactrian never writes "
            "inside a workspace. Set [snapshot] store_dir (or BACTRIAN_DATA_DIR) elsewhere."
        )
    return open_at(ws, config, create=True)


def take_snapshot(
    workspace: Path,
    *,
    config: SnapshotConfig | None = None,
    probe: BuildProbe | None = None,
    now: float | None = None,
) -> Snapshot:
    """Record ``workspace`` now. An unchanged tree records nothing new and returns the last
    snapshot; the probe runs only when the tree changed. ``now`` overrides the recorded time."""
    store = open_for_writing(workspace, config)
    try:
        return record(store, probe, now)
    finally:
        store.close()
