"""Read-only access to a user's git or Mercurial repository, shared by the miner (bases of
mined examples) and the CES (bases at a revision).

Nothing here writes to the repository: no checkout, no index, no optional locks
(``GIT_OPTIONAL_LOCKS=0``), Mercurial in plain mode.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Literal

from bactrian.errors import BactrianError

READ_ONLY_ENV = {"HGPLAIN": "1", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}


def run_vcs(
    argv: list[str],
    cwd: Path | None = None,
    *,
    input: bytes | None = None,
    error: type[BactrianError] = BactrianError,
    hint: str = "Check the repository path and the revision.",
) -> bytes:
    """Run a git/hg command read-only; a failure raises ``error`` with its stderr and ``hint``."""
    env = dict(os.environ, **READ_ONLY_ENV)
    try:
        proc = subprocess.run(argv, cwd=cwd, input=input, capture_output=True, env=env, check=False)
    except FileNotFoundError as exc:
        raise error(
            f"{argv[0]} is not installed ({exc}); install it to read this repository."
        ) from None
    if proc.returncode != 0:
        raise error(
            f"`{' '.join(argv)}` failed ({proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()[:2000]}. {hint}"
        )
    return proc.stdout


def archive(
    repo: Path,
    kind: str,
    rev: str,
    dest: Path,
    *,
    tar_filter: Literal["data", "tar"] = "data",
    error: type[BactrianError] = BactrianError,
) -> None:
    """Write the files of ``repo`` at ``rev`` into ``dest`` (created if missing; it should be
    empty). git: ``git archive`` through a temporary tar file, extracted with ``tar_filter``
    (``"data"`` refuses links that point out of the tree; ``"tar"`` keeps them). Mercurial:
    ``hg archive --type files`` into a temporary directory (hg refuses an existing
    destination), its ``.hg_archival.txt`` dropped."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bactrian-archive-") as tmp:
        if kind == "git":
            tar = Path(tmp) / "base.tar"
            run_vcs(
                ["git", "-C", str(repo), "archive", "--format=tar", "-o", str(tar), rev],
                error=error,
            )
            with tarfile.open(tar) as tf:
                tf.extractall(dest, filter=tar_filter)
        elif kind == "hg":
            out = Path(tmp) / "files"
            run_vcs(
                [
                    "hg",
                    "-R",
                    str(repo),
                    "archive",
                    "-r",
                    rev,
                    "--type",
                    "files",
                    "--no-decode",
                    str(out),
                ],
                error=error,
            )
            (out / ".hg_archival.txt").unlink(missing_ok=True)
            for child in out.iterdir():
                shutil.move(str(child), dest / child.name)
        else:
            raise error(f"Unknown VCS {kind!r} for {repo}: use 'git' or 'hg'.")
