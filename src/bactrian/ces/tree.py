"""Worker trees: export a base, copy trees, hash them, and reset them to the base state.

A tree's *source state* is every file, symlink and directory outside the build directory
(``_build``). :func:`manifest` records it (content hash, executable bit, link target) and
:func:`tree_hash` condenses it to one hash; :func:`restore` brings a tree back to a recorded
manifest from a snapshot directory and the reset is then verified by hashing again.
"""

from __future__ import annotations

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


def manifest(root: Path) -> dict[str, Entry]:
    """Relative path → entry for the source state of ``root`` (build and VCS dirs excluded)."""
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
                h = hashlib.sha1()
                with open(full, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        h.update(chunk)
                out[rel] = ("x" if st.st_mode & 0o111 else "f", h.hexdigest())
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
