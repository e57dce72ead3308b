"""The sample workspace's evolution as a version history: one commit per scripted step (its
title as the message, its scripted time as the commit date), in git or Mercurial — a small
dune repository with real history to try ``bactrian quickstart`` and the miner on.

By default the history stops at the session's last green step (the session ends in a stretch
that never builds; a repository's head normally builds)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bactrian.errors import WorkspaceError
from bactrian.sample.script import Session
from bactrian.sample.session import SESSION
from bactrian.sample.workspace import read_tree, workspace_path

AUTHOR = "Sample Dev <dev@example.com>"
EPOCH = 1_700_000_000
_ENV = {
    "GIT_AUTHOR_NAME": "Sample Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Sample Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
    "HGUSER": AUTHOR,
    "HGPLAIN": "1",
}


def last_green_step(session: Session = SESSION) -> int:
    return max(i for i, s in enumerate(session.steps) if s.expect == "green")


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    if shutil.which(argv[0]) is None:
        raise WorkspaceError(
            f"{argv[0]} is not installed; install it to write a {argv[0]} history."
        )
    proc = subprocess.run(
        argv, cwd=cwd, env={**os.environ, **_ENV, **(env or {})}, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise WorkspaceError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()[:500]}")


def write_history(
    dest: Path,
    *,
    kind: str = "git",
    steps: int | None = None,
    green_only: bool = False,
    session: Session = SESSION,
) -> Path:
    """Write the sample's evolution into a new repository at ``dest`` (new or empty): steps
    0..``steps`` (default: up to the last green one), one commit each — or with
    ``green_only`` one commit per green step only (a developer who commits when the build is
    green: each commit holds the red steps before it). Returns ``dest``."""
    if kind not in ("git", "hg"):
        raise WorkspaceError(f"Unknown VCS {kind!r}: use 'git' or 'hg'.")
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise WorkspaceError(f"{dest} exists and is not an empty directory; pick a new path.")
    last = last_green_step(session) if steps is None else steps
    if not 0 <= last < len(session.steps):
        raise WorkspaceError(f"--steps must lie between 0 and {len(session.steps) - 1}.")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(
            f"Cannot create {dest}: {exc.strerror or exc}. Pick a path that can be created."
        ) from None
    if kind == "git":
        _run(["git", "init", "-q", "-b", "main"], dest)
    else:
        _run(["hg", "init"], dest)
    previous: dict[str, str] = {}
    trees = session.trees(read_tree(workspace_path()))
    for step, tree in list(zip(session.steps, trees, strict=True))[: last + 1]:
        if green_only and step.expect != "green":
            continue
        for rel in set(previous) - set(tree):
            (dest / rel).unlink()
        for rel, text in tree.items():
            if previous.get(rel) != text:
                p = dest / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
        previous = tree
        when = EPOCH + int(step.at_s)
        if kind == "git":
            _run(["git", "add", "-A"], dest)
            date = f"{when} +0000"
            env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
            _run(["git", "commit", "-q", "--allow-empty", "-m", step.title], dest, env)
        else:
            _run(["hg", "addremove", "-q"], dest)
            _run(["hg", "commit", "-q", "-m", step.title, "-d", f"{when} 0"], dest)
    return dest
