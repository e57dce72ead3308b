"""The snapshot store of one workspace: a private git repository (one commit per snapshot on
``refs/heads/timeline``) plus a SQLite index rebuilt from it on demand.

Layout, under ``SnapshotConfig.store_dir`` (default ``$BACTRIAN_DATA_DIR/snapshots``)::

    <name>-<hash of the workspace path>/
        workspace.json    {"workspace": "/abs/path"}
        repo.git/         objects, refs/heads/timeline, info/exclude
        index             git index of the last recorded tree = the stat cache
        index.sqlite      one row per snapshot (derived; `reindex` rebuilds it)
        skipped.json      files skipped on purpose (size, mtime) so they are not re-read
        take.lock         flock held while a snapshot is being written
        daemon.lock/.pid/.log
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bactrian.errors import StoreCorruptError, StoreError, WorkspaceError
from bactrian.snapshot.config import SnapshotConfig, load_config
from bactrian.snapshot.gitrepo import TIMELINE_REF, GitRepo, init_repo, update_ref
from bactrian.snapshot.index import SnapshotIndex
from bactrian.snapshot.reader import ObjectReader
from bactrian.types import BuildResult, BuildState

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """One recorded state of a workspace: its tree and its build status."""

    seq: int
    id: str
    workspace: str
    time: float
    tree_id: str
    parent: str | None
    build: BuildResult
    changed_files: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "workspace": self.workspace,
            "time": self.time,
            "tree_id": self.tree_id,
            "parent": self.parent,
            "changed_files": self.changed_files,
            "build": self.build.to_dict(),
        }

    def headline(self) -> str:
        """First diagnostic's headline, or '' when there is none."""
        return self.build.diagnostics[0].headline() if self.build.diagnostics else ""

    @classmethod
    def from_row(
        cls, row: tuple[Any, ...], workspace: str, build: BuildResult | None = None
    ) -> Snapshot:
        """A snapshot from an index row (``bactrian.snapshot.index.COLUMNS``); ``build`` when
        the row's build record is already decoded."""
        seq, oid, time, tree, parent, _state, _dur, changed, raw = row
        if build is None:
            build = BuildResult.from_dict(json.loads(raw))
        return cls(seq, oid, workspace, time, tree, parent, build, changed)


_STATES = {s.value: s for s in BuildState}


class TimelineRow:
    """One snapshot of the timeline as the index has it, its build record decoded on first use
    (mining reads every row's state but only a few rows' diagnostics). Usable wherever the read
    methods take a snapshot; :meth:`snapshot` gives the full :class:`Snapshot`."""

    __slots__ = (
        "seq",
        "id",
        "workspace",
        "time",
        "tree_id",
        "parent",
        "state",
        "changed_files",
        "_raw",
        "_build",
    )

    def __init__(self, row: tuple[Any, ...], workspace: str) -> None:
        self.seq, self.id, self.time, self.tree_id, self.parent, state = row[:6]
        self.state = _STATES.get(state) or BuildState(state)
        self.changed_files, self._raw = row[7], row[8]
        self.workspace = workspace
        self._build: BuildResult | None = None

    @property
    def build(self) -> BuildResult:
        if self._build is None:
            self._build = BuildResult.from_dict(json.loads(self._raw))
        return self._build

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.seq,
            self.id,
            self.workspace,
            self.time,
            self.tree_id,
            self.parent,
            self.build,
            self.changed_files,
        )


AnySnapshot = Snapshot | TimelineRow


def workspace_key(workspace: Path) -> str:
    digest = hashlib.sha256(os.fsencode(workspace)).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", workspace.name) or "root"
    return f"{name[:40]}-{digest}"


def resolve_workspace(workspace: Path | str, *, must_exist: bool = True) -> Path:
    path = Path(workspace).expanduser()
    path = path.resolve() if path.exists() else Path(os.path.abspath(path))
    if must_exist and not path.is_dir():
        raise WorkspaceError(
            f"Workspace {path} does not exist or is not a directory. Pass the root directory of "
            "a project."
        )
    return path


def commit_message(rec: dict[str, Any]) -> str:
    """The commit message of a snapshot record: a headline, then the record as JSON."""
    build = rec["build"]
    return (
        f"bactrian snapshot {rec['seq']}: {build['state']} "
        f"({len(build.get('diagnostics', []))} diagnostics, {rec['changed_files']} files changed)"
        f"\n\n{json.dumps(rec, sort_keys=True, separators=(',', ':'))}\n"
    )


def _parse_commit(oid: str, raw: bytes) -> dict[str, Any]:
    text = raw.decode("utf-8", "replace")
    header, _, message = text.partition("\n\n")
    tree = parent = None
    for line in header.splitlines():
        if line.startswith("tree "):
            tree = line[5:].strip()
        elif line.startswith("parent "):
            parent = line[7:].strip()
    _, _, body = message.partition("\n\n")
    try:
        rec: dict[str, Any] = json.loads(body)
    except json.JSONDecodeError as exc:
        raise StoreCorruptError(
            f"Commit {oid} in the store has no readable snapshot record ({exc}). Run "
            "`bactrian snapshot fsck`."
        ) from exc
    rec["id"] = oid
    rec["tree_id"] = tree
    rec["parent"] = parent
    return rec


class Store:
    """Read access to one workspace's timeline (and the write path used by ``take_snapshot``)."""

    def __init__(self, workspace: Path, root: Path, config: SnapshotConfig):
        self.workspace = workspace
        self.root = root
        self.config = config
        self.git_dir = root / "repo.git"
        self.index_file = root / "index"
        self.git = GitRepo(self.git_dir)
        self.work_git = GitRepo(self.git_dir, workspace, self.index_file)
        self.db = SnapshotIndex(root / "index.sqlite")
        self._reader: ObjectReader | None = None
        self.reconcile()

    # ---- index upkeep ------------------------------------------------------------------
    def head(self) -> str | None:
        return self.git.read_ref(TIMELINE_REF)

    def reconcile(self) -> int:
        """Add index rows for commits the ref has but SQLite lacks (after a kill between the
        ref update and the row insert). Returns the number of rows added."""
        head = self.head()
        last = self.db.last()
        if head is None:
            if last is not None:
                self._restore_ref(last[1])
            return 0
        if last is not None and last[1] == head:
            return 0
        known = {r[1] for r in self.db.rows()}
        args = ["rev-list", head]
        if last is not None and last[1] in known:
            args += ["--not", last[1]]
        missing = [o for o in self.git.out(*args).split() if o not in known]
        if last is not None and len(missing) > 0 and len(known) > 0:
            # the new commits must descend from the last indexed one; else rebuild all
            base = self.git.run("merge-base", "--is-ancestor", last[1], head, check=False)
            if base.returncode != 0:
                return self.reindex()
        raws = self.git.cat_file_batch(missing)
        for oid in reversed(missing):
            self.db.insert(_parse_commit(oid, raws[oid]))
        if missing:
            log.info(
                "store %s: indexed %d snapshot(s) found in the repository", self.root, len(missing)
            )
        return len(missing)

    def _restore_ref(self, oid: str) -> None:
        """The ref is gone or unreadable (e.g. a crash of the machine) but the index knows the
        last snapshot: point the ref back at it when that commit is intact."""
        if self.git.run("cat-file", "-e", oid + "^{commit}", check=False).returncode != 0:
            log.warning("store %s: timeline ref and last commit missing; run fsck", self.root)
            return
        ref = self.git_dir / TIMELINE_REF
        with contextlib.suppress(FileNotFoundError):
            ref.unlink()
        update_ref(self.git_dir, oid, None)
        log.warning("store %s: timeline ref was missing; restored it to %s", self.root, oid)

    def reindex(self) -> int:
        """Rebuild the SQLite index from the repository's timeline. Returns the row count."""
        head = self.head()
        self.db.clear()
        if head is None:
            return 0
        oids = self.git.out("rev-list", head).split()
        raws = self.git.cat_file_batch(oids)
        for oid in reversed(oids):
            self.db.insert(_parse_commit(oid, raws[oid]))
        return len(oids)

    # ---- reading -----------------------------------------------------------------------
    def _snap(self, row: tuple[Any, ...]) -> Snapshot:
        return Snapshot.from_row(row, str(self.workspace))

    def timeline(self) -> list[Snapshot]:
        return [self._snap(r) for r in self.db.rows()]

    def timeline_rows(self) -> list[TimelineRow]:
        """The timeline with build records decoded lazily (the miner's fast path)."""
        ws = str(self.workspace)
        return [TimelineRow(r, ws) for r in self.db.rows()]

    def last(self) -> Snapshot | None:
        row = self.db.last()
        return self._snap(row) if row else None

    def get(self, ref: str | int) -> Snapshot:
        """A snapshot by seq number (negative counts from the end; ``latest``) or id prefix."""
        text = str(ref).strip()
        if text in ("latest", "head", "HEAD"):
            text = "-1"
        if re.fullmatch(r"-?\d+", text) and (len(text) < 7 or text.startswith("-")):
            seq = int(text)
            if seq < 0:
                rows = self.db.rows()
                if -seq <= len(rows):
                    return self._snap(rows[seq])
            else:
                row = self.db.by_seq(seq)
                if row:
                    return self._snap(row)
        elif re.fullmatch(r"[0-9a-f]{4,40}", text):
            rows = self.db.by_prefix(text)
            if len(rows) == 1:
                return self._snap(rows[0])
            if len(rows) > 1:
                raise StoreError(f"Snapshot id prefix {text!r} is ambiguous; give more digits.")
        raise StoreError(
            f"No snapshot {text!r} in the timeline of {self.workspace}. Refer to one by its seq "
            f"number or an id prefix; `bactrian snapshot list {self.workspace}` shows them."
        )

    @property
    def reader(self) -> ObjectReader:
        """The store's object reader (one ``git cat-file --batch`` process, started on first
        use, with caches of trees and blobs); stopped by :meth:`close`."""
        if self._reader is None:
            self._reader = ObjectReader(self.git_dir)
        return self._reader

    def _entries(self, snap: AnySnapshot) -> dict[str, tuple[str, str]]:
        """path → (mode, blob id) of every file in the snapshot (gitlinks left out). Cached:
        do not modify."""
        return self.reader.entries(snap.tree_id)

    def file_list(self, snap: AnySnapshot) -> list[str]:
        return sorted(self._entries(snap))

    def read_files(self, snap: AnySnapshot, paths: Iterable[str] | None = None) -> dict[str, bytes]:
        """Contents of ``paths`` (default: all files) in ``snap``; paths it lacks are left out.
        A symlink reads as its target text."""
        if paths is None:
            entries = self._entries(snap)
        else:
            entries = self.reader.lookup(snap.tree_id, dict.fromkeys(paths))
        blobs = self.reader.blobs(sorted({oid for _, oid in entries.values()}))
        return {p: blobs[oid] for p, (_, oid) in entries.items()}

    def materialize(self, snap: AnySnapshot, dest: Path) -> None:
        """Write the snapshot's tree into ``dest`` (created if needed; existing files with the
        same names are overwritten, others are left alone)."""
        entries = self._entries(snap)
        blobs = self.git.cat_file_batch(sorted({oid for _, oid in entries.values()}))  # uncached
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for path, (mode, oid) in sorted(entries.items()):
            target = dest / path
            if ".." in Path(path).parts or not target.resolve().is_relative_to(root):
                raise StoreCorruptError(f"Snapshot {snap.seq} holds an unsafe path {path!r}.")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            if mode == "120000":
                os.symlink(os.fsdecode(blobs[oid]), target)
            else:
                target.write_bytes(blobs[oid])
                if mode == "100755":
                    target.chmod(0o755)

    def diff(self, a: AnySnapshot, b: AnySnapshot, paths: Iterable[str] | None = None) -> str:
        """git-style unified diff from ``a`` to ``b`` (``git apply``-able), optionally limited to
        ``paths``."""
        args = ["diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames"]
        args += [a.tree_id, b.tree_id]
        if paths is not None:
            args += ["--", *[":(literal)" + p for p in paths]]
        return self.git.out(*args)

    def changed_paths(self, a: AnySnapshot | None, b: AnySnapshot) -> list[str]:
        """Files added, removed or changed (content or mode) from ``a`` (None: nothing) to
        ``b``, sorted — computed in-process by walking both trees."""
        return self.reader.changed(a.tree_id if a else None, b.tree_id)

    def prefetch_trees(self, snaps: Iterable[AnySnapshot]) -> None:
        """Read the trees of ``snaps`` (all levels) in a few batched requests, so that
        ``file_list``, ``read_files`` and ``changed_paths`` on them need no round trip."""
        self.reader.prefetch_trees({s.tree_id for s in snaps})

    def prefetch_files(self, wanted: Iterable[tuple[AnySnapshot, Iterable[str]]]) -> None:
        """Read the contents of every (snapshot, paths) pair in one batched request (cached, up
        to the reader's blob cache size); paths a snapshot lacks are ignored."""
        oids: set[str] = set()
        for snap, paths in wanted:
            oids.update(oid for _, oid in self.reader.lookup(snap.tree_id, paths).values())
        self.reader.blobs(sorted(oids))

    # ---- integrity and upkeep ----------------------------------------------------------
    def fsck(self) -> list[str]:
        """Problems found in the repository and index; ``[]`` means healthy."""
        problems: list[str] = []
        proc = self.git.run("fsck", "--full", "--no-dangling", "--no-progress", check=False)
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        problems += [f"git fsck: {ln}" for ln in text.splitlines() if ln.strip()]
        if proc.returncode != 0 and not problems:
            problems.append(f"git fsck exited with status {proc.returncode}")
        rows = self.db.rows()
        head = self.head()
        if rows and head is None:
            problems.append(
                f"timeline ref {TIMELINE_REF} is missing but the index has {len(rows)} rows"
            )
        if rows and head is not None and rows[-1][1] != head:
            problems.append(f"index ends at {rows[-1][1]} but the timeline ref is {head}")
        check = self.git.run(
            "cat-file",
            "--batch-check",
            input="".join(r[1] + "\n" for r in rows).encode(),
            check=False,
        ).stdout.decode()
        for row, line in zip(rows, check.splitlines(), strict=False):
            parts = line.split()
            if len(parts) < 2 or parts[1] != "commit":
                problems.append(
                    f"snapshot {row[0]}: commit {row[1]} is missing from the repository"
                )
        prev = None
        for i, row in enumerate(rows, start=1):
            if row[0] != i:
                problems.append(f"snapshot seq {row[0]} out of order (expected {i})")
                break
            if row[4] != prev:
                problems.append(f"snapshot {row[0]}: parent {row[4]} is not snapshot {i - 1}")
            prev = row[1]
        return problems

    def maintain(self) -> None:
        """Pack loose objects with deltas against the whole store (store growth per snapshot
        then tracks the size of the changes, not of whole files and trees)."""
        self.git.run("repack", "-a", "-d", "-q", "--no-write-bitmap-index", nice=10)
        self.db.set_meta("snapshots_since_pack", "0")
        self.db.set_meta("objects_since_pack", "0")
        self.db.checkpoint()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self.db.close()


def store_root(workspace: Path, config: SnapshotConfig) -> Path:
    return config.resolved_store_dir() / workspace_key(workspace)


def open_at(workspace: Path, config: SnapshotConfig, *, create: bool) -> Store:
    """The store of the resolved ``workspace``; ``create`` makes it on first use."""
    root = store_root(workspace, config)
    if not (root / "repo.git" / "HEAD").exists():
        if not create:
            raise StoreError(
                f"No snapshots recorded for {workspace} (no store at {root}). Take one with "
                f"`bactrian snapshot take {workspace}`."
            )
        try:
            root.mkdir(parents=True, exist_ok=True)
            meta = root / "workspace.json"
            if not meta.exists():  # unique temp name: two first snapshots may race here
                fd, tmp = tempfile.mkstemp(prefix="workspace.json.", dir=root)
                with os.fdopen(fd, "w") as fh:
                    fh.write(json.dumps({"workspace": str(workspace)}) + "\n")
                os.replace(tmp, meta)
            init_repo(root / "repo.git")
        except OSError as exc:
            raise StoreError(f"Cannot create the snapshot store {root}: {exc}.") from exc
    return Store(workspace, root, config)


def open_store(workspace: Path, config: SnapshotConfig | None = None) -> Store:
    """The store of ``workspace`` (which must have at least been snapshotted once)."""
    config = config or load_config()
    return open_at(resolve_workspace(workspace, must_exist=False), config, create=False)


def list_workspaces(config: SnapshotConfig | None = None) -> list[Path]:
    """Every workspace that has a store under the configured store directory."""
    config = config or load_config()
    base = config.resolved_store_dir()
    out: list[Path] = []
    if not base.is_dir():
        return out
    for meta in sorted(base.glob("*/workspace.json")):
        try:
            out.append(Path(json.loads(meta.read_text())["workspace"]))
        except (OSError, ValueError, KeyError):
            log.warning("unreadable %s; skipped", meta)
    return sorted(out)
