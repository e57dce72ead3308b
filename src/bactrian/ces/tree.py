"""Worker trees: export a base, copy trees, hash them, and reset them to the base state.

A tree's *source state* is every file, symlink and directory outside the build directory
(``_build``). :func:`manifest` records it (content hash, executable bit, link target) and
:func:`tree_hash` condenses it to one hash; :func:`restore` brings a tree back to a recorded
manifest from a snapshot directory and the reset is then verified by hashing again.

Host-side code must never follow a path that sandboxed code could have written: the helpers
here that touch a tree (:func:`chown_tree`, :func:`chown_nofollow`, :func:`tree_usage`,
:func:`link_component`) resolve it one component at a time with ``openat``-style calls and
``O_NOFOLLOW``, and never follow a symbolic link.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from pathlib import Path

from bactrian import vcs
from bactrian.ces.contract import BaseSpec
from bactrian.errors import CESError, WorkspaceError

BUILD_DIRS = frozenset({"_build", "_opam"})
VCS_DIRS = frozenset({".git", ".hg", ".svn", ".jj"})

Entry = tuple[str, str]  # (kind "f"/"x"/"l"/"d", sha1 or link target or "")


def _skip(name: str) -> bool:
    return name in BUILD_DIRS or name in VCS_DIRS


StatCache = dict[str, tuple[tuple[int, int, int, int], str]]


def manifest(root: Path, cache: StatCache | None = None) -> dict[str, Entry]:
    """Relative path → entry for the source state of ``root`` (build and VCS dirs excluded).

    ``cache`` (kept by the caller between calls) reuses a file's hash while its inode, size,
    mtime and ctime are unchanged: for a tree only trusted code writes (a warm tree under the
    overlay isolation), where ctime cannot be set back."""
    out: dict[str, Entry] = {}
    root_s = str(root)
    for dirpath, dirnames, filenames in os.walk(root_s):
        rel_dir = os.path.relpath(dirpath, root_s)
        keep = []
        for d in dirnames:
            if rel_dir == "." and _skip(d):
                continue
            full = os.path.join(dirpath, d)
            rel = os.path.normpath(os.path.join(rel_dir, d))
            if os.path.islink(full):
                out[rel] = ("l", os.readlink(full))
            else:
                out[rel] = ("d", "")
                keep.append(d)
        dirnames[:] = sorted(keep)
        for f in filenames:
            full = os.path.join(dirpath, f)
            rel = os.path.normpath(os.path.join(rel_dir, f))
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                hit = cache.get(rel) if cache is not None else None
                if hit is not None and hit[0] == key:
                    digest = hit[1]
                else:
                    h = hashlib.sha1()
                    with open(full, "rb") as fh:
                        while chunk := fh.read(1 << 20):
                            h.update(chunk)
                    digest = h.hexdigest()
                    if cache is not None:
                        cache[rel] = (key, digest)
                out[rel] = ("x" if st.st_mode & 0o111 else "f", digest)
            else:
                out[rel] = ("?", "")
    return out


def tree_hash(m: dict[str, Entry]) -> str:
    h = hashlib.sha256()
    for rel in sorted(m):
        kind, val = m[rel]
        h.update(f"{rel}\0{kind}\0{val}\n".encode())
    return h.hexdigest()


def copy_tree(src: Path, dst: Path, *, with_build: bool = False) -> None:
    """Copy ``src`` to ``dst`` (symlinks kept as links; build dirs only if ``with_build``)."""

    def ignore(dirpath: str, names: list[str]) -> set[str]:
        if Path(dirpath) != src:
            return set()
        return {n for n in names if n in VCS_DIRS or (n in BUILD_DIRS and not with_build)}

    shutil.copytree(src, dst, symlinks=True, ignore=ignore, copy_function=shutil.copy2)


def restore(tree: Path, snapshot: Path, want: dict[str, Entry]) -> list[str]:
    """Make the source state of ``tree`` equal ``want`` (whose contents are in ``snapshot``).
    Returns the paths it changed."""
    have = manifest(tree)
    changed: list[str] = []
    # remove what should not be there (deepest first), and whatever differs in kind/content
    for rel in sorted(have, key=lambda r: r.count(os.sep), reverse=True):
        if want.get(rel) == have[rel]:
            continue
        path = tree / rel
        if have[rel][0] == "d" and rel in want and want[rel][0] == "d":
            continue
        changed.append(rel)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    have = manifest(tree)
    for rel in sorted(want, key=lambda r: r.count(os.sep)):
        if have.get(rel) == want[rel]:
            continue
        if rel not in changed:
            changed.append(rel)
        kind, val = want[rel]
        path = tree / rel
        if kind == "d":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "l":
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(val, path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(snapshot / rel, path)
    return changed


# ----------------------------------------------------------------------------- no-follow access

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_parent(root: Path, rel: str) -> tuple[int, str] | None:
    """An fd of ``root/rel``'s parent reached without following any link, and the last
    component; ``None`` when a component is missing, a link or not a directory."""
    parts = [p for p in Path(rel).parts if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        os.close(fd)
        return None
    return fd, parts[-1]


def link_component(root: Path, rel: str) -> str | None:
    """The first component of ``rel`` under ``root`` that is a symbolic link (or not a
    directory where one is needed), as a relative path; ``None`` when there is none (missing
    components are fine: they are created inside the tree)."""
    parts = [p for p in Path(rel).parts if p not in ("", ".")]
    fd = os.open(root, _DIR_FLAGS)
    try:
        for i, part in enumerate(parts):
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
            if stat.S_ISLNK(st.st_mode):
                return "/".join(parts[: i + 1])
            if i == len(parts) - 1:
                return None
            if not stat.S_ISDIR(st.st_mode):
                return "/".join(parts[: i + 1])
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    return None


def chown_nofollow(root: Path, rel: str, uid: int) -> None:
    """``lchown`` of ``root/rel`` to ``uid`` reached without following links (nothing is done
    when a component on the way is a link); a directory is chowned with all it holds."""
    opened = _open_parent(root, rel)
    if opened is None:
        return
    fd, name = opened
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        os.chown(name, uid, uid, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            chown_tree(Path(f"/proc/self/fd/{fd}") / name, uid, _top_checked=True)
    finally:
        os.close(fd)


def chown_tree(root: Path, uid: int, *, _top_checked: bool = False) -> None:
    """Give ``root`` and everything under it to ``uid`` (links themselves, never followed)."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) and not _top_checked:
        os.lchown(root, uid, uid)
        return
    if not stat.S_ISDIR(st.st_mode):
        os.lchown(root, uid, uid)
        return
    os.chown(root, uid, uid, follow_symlinks=False)
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        for n in dirnames + filenames:
            with contextlib.suppress(FileNotFoundError):
                os.chown(n, uid, uid, dir_fd=dirfd, follow_symlinks=False)


def tree_usage(root: Path) -> int:
    """Bytes allocated by the files under ``root`` (``st_blocks``), links never followed."""
    total = 0
    for _dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        for n in dirnames + filenames:
            with contextlib.suppress(OSError):
                total += os.stat(n, dir_fd=dirfd, follow_symlinks=False).st_blocks * 512
    return total


def _run(argv: list[str], cwd: Path | None = None) -> str:
    out = vcs.run_vcs(argv, cwd, error=CESError, hint="Check the base's source and revision.")
    return out.decode()


def detect_vcs(source: Path) -> str | None:
    if (source / ".git").exists():
        return "git"
    if (source / ".hg").is_dir():
        return "hg"
    return None


def resolve(spec: BaseSpec) -> BaseSpec:
    """Fill in ``vcs`` and ``resolved_rev`` (a full commit id) without touching the repo."""
    src = Path(spec.source).expanduser()
    if not src.is_dir():
        raise WorkspaceError(
            f"CES base {spec.source!r} is not a directory. Pass a project directory or a "
            "git/Mercurial repository (with --rev)."
        )
    vcs = spec.vcs or (detect_vcs(src) if spec.rev else None)
    if spec.rev and vcs is None:
        raise CESError(
            f"--rev {spec.rev} given, but {src} is neither a git nor a Mercurial repository."
        )
    resolved = spec.resolved_rev
    if spec.rev and not resolved:
        if vcs == "git":
            resolved = _run(
                ["git", "-C", str(src), "rev-parse", "--verify", f"{spec.rev}^{{commit}}"]
            ).strip()
        elif vcs == "hg":
            resolved = _run(["hg", "-R", str(src), "log", "-r", spec.rev, "-T", "{node}"]).strip()
        else:
            raise CESError(f"Unknown VCS {vcs!r} for base {src}: use 'git' or 'hg'.")
    elif not spec.rev:
        # a plain directory changes under us: its identity is its content
        resolved = "tree:" + tree_hash(manifest(src))[:20]
    return BaseSpec(
        source=str(src.resolve()),
        rev=spec.rev,
        vcs=vcs,
        stages=dict(spec.stages),
        adapter=spec.adapter,
        resolved_rev=resolved,
        require_green=spec.require_green,
    )


def export(spec: BaseSpec, dest: Path) -> None:
    """Write the base's files to ``dest`` (created). Read-only on the source repository:
    ``git archive`` / ``hg archive`` for a revision, a plain copy for a directory."""
    src = Path(spec.source)
    if not spec.rev:
        copy_tree(src, dest)
        return
    dest.mkdir(parents=True)
    vcs.archive(src, str(spec.vcs), str(spec.resolved_rev), dest, tar_filter="tar", error=CESError)
