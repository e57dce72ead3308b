"""A private git object database per workspace, driven by the ``git`` command.

Every call gets an explicit environment: ``GIT_DIR`` (the store's repository),
``GIT_WORK_TREE`` (the workspace, read only), ``GIT_INDEX_FILE`` (the store's own index, which
is also the stat cache), no system or global config, hooks pointed at ``/dev/null``. So git never
looks for a ``.git`` in the workspace, never reads the user's config, never runs a hook and
never writes anywhere but the store.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from bactrian.errors import StoreError, WorkspaceError

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ZERO_OID = "0" * 40
TIMELINE_REF = "refs/heads/timeline"

# Settings of every store repository. ``gc.auto=0``: we pack ourselves (``Store.maintain``).
REPO_CONFIG: dict[str, str] = {
    "core.bare": "false",
    "core.hooksPath": "/dev/null",
    "core.untrackedCache": "true",
    "core.fsmonitor": "false",
    "core.autocrlf": "false",
    "core.symlinks": "true",
    "core.filemode": "true",
    "core.quotePath": "false",
    "core.logAllRefUpdates": "false",
    "core.splitIndex": "true",
    "splitIndex.maxPercentChange": "20",
    "splitIndex.sharedIndexExpire": "now",
    "index.version": "4",
    "gc.auto": "0",
    "status.showUntrackedFiles": "all",
    "status.aheadBehind": "false",
    "diff.renames": "false",
    "diff.external": "",
    "advice.statusHints": "false",
    "commit.gpgSign": "false",
    "pack.compression": "9",
}


# $GIT_DIR/info/attributes outranks the workspace's .gitattributes: record bytes as they are
# (no end-of-line conversion, no clean filters such as git-lfs, no $Id$ expansion).
STORE_ATTRIBUTES = "* -text -eol -filter -ident -working-tree-encoding\n"


def _hint(stderr: str) -> str:
    low = stderr.lower()
    if "no space left" in low:
        return " The disk is full: free some space; the next snapshot will pick up all changes."
    if "permission denied" in low:
        return " Check the permissions of the store directory."
    if any(w in low for w in ("invalid object", "corrupt", "missing", "bad object", "inflate")):
        return " The store looks damaged: run `bactrian snapshot fsck WORKSPACE`."
    if "file exists" in low and ".lock" in low:
        return " Another git process holds a lock in the store; it is retried next time."
    return ""


class GitRepo:
    """Runs git against one store repository, optionally with the workspace as work tree."""

    def __init__(
        self, git_dir: Path, work_tree: Path | None = None, index_file: Path | None = None
    ):
        self.git_dir = git_dir
        self.work_tree = work_tree
        self.index_file = index_file
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            GIT_DIR=str(git_dir),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_TERMINAL_PROMPT="0",
            GIT_AUTHOR_NAME="bactrian",
            GIT_AUTHOR_EMAIL="bactrian@localhost",
            GIT_COMMITTER_NAME="bactrian",
            GIT_COMMITTER_EMAIL="bactrian@localhost",
            LC_ALL="C",
        )
        if work_tree is not None:
            env["GIT_WORK_TREE"] = str(work_tree)
        if index_file is not None:
            env["GIT_INDEX_FILE"] = str(index_file)
        self.env = env

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        check: bool = True,
        extra_env: dict[str, str] | None = None,
        nice: int = 0,
    ) -> subprocess.CompletedProcess[bytes]:
        env = self.env if not extra_env else {**self.env, **extra_env}
        cwd = str(self.work_tree) if self.work_tree is not None else str(self.git_dir)
        try:
            proc = subprocess.run(
                ["git", *args],
                input=input,
                env=env,
                cwd=cwd,
                capture_output=True,
                check=False,
                preexec_fn=(lambda: os.nice(nice)) if nice else None,
            )
        except FileNotFoundError as exc:
            if shutil.which("git") is None:
                raise StoreError("The `git` command is not installed; install git.") from exc
            raise WorkspaceError(
                f"{cwd} does not exist any more (was the workspace moved or deleted?)."
            ) from exc
        except OSError as exc:
            raise StoreError(f"Cannot run git in store {self.git_dir}: {exc}.") from exc
        if check and proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise StoreError(
                f"git {args[0]} failed in store {self.git_dir} (exit {proc.returncode}): "
                f"{err or '(no message)'}.{_hint(err)}"
            )
        return proc

    def out(self, *args: str, input: bytes | None = None, **kw: object) -> str:
        return self.run(*args, input=input, **kw).stdout.decode("utf-8", "surrogateescape")  # type: ignore[arg-type]

    def rev_parse(self, rev: str) -> str | None:
        proc = self.run("rev-parse", "-q", "--verify", rev + "^{commit}", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def read_ref(self, ref: str = TIMELINE_REF) -> str | None:
        """The ref's commit id; reads the loose ref file directly (cheap), else asks git."""
        try:
            text = (self.git_dir / ref).read_text().strip()
            if len(text) == 40:
                return text
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError:
            pass
        return self.rev_parse(ref)

    def cat_file_batch(self, oids: Sequence[str]) -> dict[str, bytes]:
        """Contents of many objects in one ``git cat-file --batch`` call."""
        if not oids:
            return {}
        data = self.run(
            "cat-file", "--batch", input="".join(o + "\n" for o in oids).encode()
        ).stdout
        out: dict[str, bytes] = {}
        pos = 0
        for oid in oids:
            nl = data.index(b"\n", pos)
            header = data[pos:nl].decode()
            parts = header.split()
            if len(parts) == 2 and parts[1] == "missing":
                raise StoreError(
                    f"Object {oid} is missing from store {self.git_dir}. The store is damaged: "
                    "run `bactrian snapshot fsck`."
                )
            size = int(parts[2])
            out[oid] = data[nl + 1 : nl + 1 + size]
            pos = nl + 1 + size + 1
        return out


def init_repo(git_dir: Path) -> None:
    """Create the store repository atomically (built beside it, then renamed into place)."""
    if (git_dir / "HEAD").exists():
        return
    git_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".repo-", dir=git_dir.parent))
    try:
        repo = GitRepo(tmp)
        repo.run("init", "-q", "--bare", "--template=", str(tmp))  # no sample hooks
        for key, value in REPO_CONFIG.items():
            repo.run("config", key, value)
        repo.run("symbolic-ref", "HEAD", TIMELINE_REF)
        try:
            tmp.rename(git_dir)
        except OSError:
            if not (git_dir / "HEAD").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_tmp_counter = itertools.count()


def write_object(git_dir: Path, kind: str, body: bytes, *, level: int = 1) -> str:
    """Write one loose object as git does (zlib, a read-only temp file renamed into place) and
    return its id; an object already there (loose) is left alone. ``level`` 1 is git's
    ``core.looseCompression`` default; packing recompresses anyway."""
    data = b"%s %d\0" % (kind.encode(), len(body)) + body
    oid = hashlib.sha1(data).hexdigest()
    obj_dir = os.path.join(git_dir, "objects", oid[:2])
    final = os.path.join(obj_dir, oid[2:])
    if os.path.exists(final):
        return oid
    tmp = os.path.join(obj_dir, f"tmp_obj_{os.getpid()}_{next(_tmp_counter)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        try:
            fd = os.open(tmp, flags, 0o444)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(obj_dir)
            fd = os.open(tmp, flags, 0o444)
        try:
            view = memoryview(zlib.compress(data, level))
            while view:  # a short write (file size limit, full disk) raises on the next call
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, final)  # same id, same content: replacing a racing copy is harmless
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(
            f"Cannot write a {kind} object into store {git_dir}: {exc}.{_hint(str(exc))}"
        ) from exc
    return oid


PACK_TYPES = {"commit": 1, "tree": 2, "blob": 3}


def write_pack(git_dir: Path, objects: Sequence[tuple[str, bytes]]) -> list[str]:
    """Write ``objects`` (kind, body) as one small pack (no deltas) with its version-2 index,
    as ``git index-pack`` would, and return their ids. Two files instead of one per object;
    ``Store.maintain`` folds the small packs into one later. The pack is renamed into place
    before its index, so a crash leaves at worst a pack git ignores."""
    entries: list[tuple[bytes, int, int]] = []  # (20-byte id, crc32, offset)
    chunks = [b"PACK", (2).to_bytes(4, "big"), b""]  # count filled in below
    offset = 12
    ids: list[str] = []
    seen: set[bytes] = set()
    for kind, body in objects:
        digest = hashlib.sha1(b"%s %d\0" % (kind.encode(), len(body)) + body).digest()
        ids.append(digest.hex())
        if digest in seen:  # two files with the same content: one copy
            continue
        seen.add(digest)
        size = len(body)
        header = bytearray([(PACK_TYPES[kind] << 4) | (size & 0x0F)])
        size >>= 4
        while size:
            header[-1] |= 0x80
            header.append(size & 0x7F)
            size >>= 7
        packed = bytes(header) + zlib.compress(body, 1)
        entries.append((digest, zlib.crc32(packed), offset))
        chunks.append(packed)
        offset += len(packed)
    if offset >= 1 << 31:
        raise StoreError("Too many changed bytes for one small pack; use git's path.")
    chunks[2] = len(entries).to_bytes(4, "big")
    pack = b"".join(chunks)
    pack_sum = hashlib.sha1(pack).digest()
    pack += pack_sum
    entries.sort()
    fanout = [0] * 256
    for digest, _, _ in entries:
        fanout[digest[0]] += 1
    total = 0
    idx = [b"\xfftOc", (2).to_bytes(4, "big")]
    for n in fanout:
        total += n
        idx.append(total.to_bytes(4, "big"))
    idx += [d for d, _, _ in entries]
    idx += [crc.to_bytes(4, "big") for _, crc, _ in entries]
    idx += [off.to_bytes(4, "big") for _, _, off in entries]
    idx.append(pack_sum)
    idx_bytes = b"".join(idx)
    idx_bytes += hashlib.sha1(idx_bytes).digest()
    pack_dir = os.path.join(git_dir, "objects", "pack")
    base = os.path.join(pack_dir, "pack-" + pack_sum.hex())
    try:
        os.makedirs(pack_dir, exist_ok=True)
        for suffix, data in ((".pack", pack), (".idx", idx_bytes)):
            # git's temp names (tmp_pack_*, tmp_idx_*): never taken for a pack, pruned by gc
            tmp = os.path.join(pack_dir, f"tmp_{suffix[1:]}_{os.getpid()}_{next(_tmp_counter)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                view = memoryview(data)
                while view:  # a short write (file size limit, full disk) raises next call
                    view = view[os.write(fd, view) :]
            except OSError:
                os.close(fd)
                os.unlink(tmp)
                raise
            os.close(fd)
            os.replace(tmp, base + suffix)
    except OSError as exc:
        raise StoreError(
            f"Cannot write a pack into store {git_dir}: {exc}.{_hint(str(exc))}"
        ) from exc
    return ids


def write_commit(git_dir: Path, tree: str, parent: str | None, when: int, message: str) -> str:
    """Write a commit object as git would (loose, zlib, temp file then link into place) and
    return its id. Saves a ``git commit-tree`` process per snapshot."""
    ident = f"bactrian <bactrian@localhost> {when} +0000"
    body = f"tree {tree}\n" + (f"parent {parent}\n" if parent else "")
    body += f"author {ident}\ncommitter {ident}\n\n{message}"
    return write_object(git_dir, "commit", body.encode(), level=zlib.Z_DEFAULT_COMPRESSION)


def update_ref(git_dir: Path, new: str, old: str | None, ref: str = TIMELINE_REF) -> None:
    """Point ``ref`` at ``new`` if it still points at ``old`` (None: must not exist), the way
    git does it: ``<ref>.lock`` created exclusively, written, renamed over the ref."""
    path = git_dir / ref
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise StoreError(
                f"The timeline ref of store {git_dir} is locked ({lock} exists); it is retried "
                "next time."
            ) from exc
        raise StoreError(f"Cannot lock {lock}: {exc}.{_hint(str(exc))}") from exc
    try:
        try:
            current: str | None = path.read_text().strip() or None
        except FileNotFoundError:
            current = None
        if current != old:
            raise StoreError(
                f"The timeline of store {git_dir} moved under us (expected {old}, found "
                f"{current}); the snapshot is retried next time."
            )
        os.write(fd, (new + "\n").encode())  # no fsync: a ref lost in a crash of the
        os.close(fd)  # machine is restored from the SQLite index (Store.reconcile)
        fd = -1
        os.rename(lock, path)
    except OSError as exc:
        raise StoreError(f"Cannot update {path}: {exc}.{_hint(str(exc))}") from exc
    finally:
        if fd >= 0:
            os.close(fd)
        if lock.exists():
            lock.unlink()
