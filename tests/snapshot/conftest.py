"""Helpers for snapshot tests: real git / Mercurial / plain workspaces in tmp_path."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from bactrian.snapshot import SnapshotConfig

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def sh(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV, "HGUSER": "Dev <dev@example.com>"}
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)


SOURCES: dict[str, str | bytes] = {
    "dune-project": "(lang dune 2.9)\n",
    "src/dune": "(library (name shapes))\n",
    "src/shapes.ml": "type t = Circle of float\nlet area (Circle r) = 3.14 *. r *. r\n",
    "src/shapes.mli": "type t = Circle of float\nval area : t -> float\n",
    "test/test_shapes.ml": "let () = assert true\n",
}


def make_plain(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write(root, SOURCES)
    return root


def make_git(root: Path) -> Path:
    make_plain(root)
    sh(["git", "init", "-q"], root)
    write(root, {".gitignore": "*.log\n"})
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "init"], root)
    return root


def make_hg(root: Path) -> Path:
    make_plain(root)
    sh(["hg", "init"], root)
    write(root, {".hgignore": "syntax: glob\n*.log\n"})
    sh(["hg", "add", "-q"], root)
    sh(["hg", "commit", "-qm", "init"], root)
    return root


def tree_digest(root: Path, skip: tuple[str, ...] = ("_build",)) -> dict[str, str]:
    """Hash of every entry under root (files, symlinks, dirs, modes), VCS dirs included."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if os.path.join(rel_dir, d).lstrip("./") not in skip]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = "link:" + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = f"dir:{st.st_mode:o}"
            else:
                with open(p, "rb") as fh:
                    out[rel] = (
                        f"{st.st_mode:o}:{st.st_mtime_ns}:" + hashlib.sha256(fh.read()).hexdigest()
                    )
    return out


@pytest.fixture
def cfg(tmp_path: Path) -> SnapshotConfig:
    """A config with no build probe and a store outside every workspace."""
    return SnapshotConfig(probe="none", store_dir=tmp_path / "store")


def damage_object(git_dir: Path, oid: str, how: str) -> None:
    """Delete or corrupt object ``oid`` of a store, loose or in one of the small packs the
    in-process write path makes."""
    loose = git_dir / "objects" / oid[:2] / oid[2:]
    if loose.exists():
        if how == "delete":
            loose.unlink()
        else:
            loose.chmod(0o644)
            loose.write_bytes(b"garbage that is not zlib")
        return
    env = {**os.environ, "GIT_DIR": str(git_dir)}
    for idx in (git_dir / "objects" / "pack").glob("*.idx"):
        listing = subprocess.run(
            ["git", "show-index"], stdin=idx.open("rb"), env=env, capture_output=True, text=True
        ).stdout
        offsets = {line.split()[1]: int(line.split()[0]) for line in listing.splitlines()}
        if oid not in offsets:
            continue
        pack = idx.with_suffix(".pack")
        if how == "delete":  # unpack the others loose, then drop the pack and the object
            data = pack.read_bytes()
            idx.unlink()
            pack.unlink()
            subprocess.run(["git", "unpack-objects", "-q"], input=data, env=env, check=True)
            loose.unlink()
            return
        data = bytearray(pack.read_bytes())
        at = offsets[oid] + 4  # inside the object's zlib stream
        data[at : at + 8] = b"\xff" * 8
        pack.chmod(0o644)
        pack.write_bytes(bytes(data))
        return
    raise AssertionError(f"object {oid} not found in {git_dir}")
