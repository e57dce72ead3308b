"""Read-only access to a user's git or Mercurial repository, shared by the miner (bases of
mined examples) and the CES (bases at a revision).

Nothing here writes to the repository: no checkout, no index, no optional locks
(``GIT_OPTIONAL_LOCKS=0``), Mercurial in plain mode.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Literal

from bactrian.errors import BactrianError

READ_ONLY_ENV = {"HGPLAIN": "1", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}

# Mercurial writes caches into the repository as a side effect of reading it (evaluating a
# revset such as ``sort(4:, rev)`` writes .hg/cache/tags2-visible; branch caches likewise).
# Every hg command bactrian runs loads this extension, which turns those writes into no-ops:
# the user's repository stays byte-identical.
HG_READONLY_EXTENSION = """\
# written by bactrian: no cache writes while bactrian reads a repository
def uisetup(ui):
    from mercurial import branchmap, tags

    tags._writetagcache = lambda *args, **kwargs: None
    for owner, name in (
        (getattr(branchmap, "branchcache", None), "write"),
        (getattr(branchmap, "revbranchcache", None), "write"),
    ):
        if owner is not None and hasattr(owner, name):
            setattr(owner, name, lambda *args, **kwargs: None)
"""


def hg_readonly_args() -> list[str]:
    """``--config extensions.…=PATH`` loading :data:`HG_READONLY_EXTENSION` (the file is
    written once per content into the temporary directory)."""
    digest = hashlib.sha256(HG_READONLY_EXTENSION.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"bactrian-hg-readonly-{os.getuid()}-{digest}.py"
    if not path.is_file() or path.read_text() != HG_READONLY_EXTENSION:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(HG_READONLY_EXTENSION)
        os.replace(tmp, path)
    return ["--config", f"extensions.bactrian_readonly={path}"]


def _hg_argv(argv: list[str]) -> list[str]:
    return [argv[0], *hg_readonly_args(), *argv[1:]] if argv[:1] == ["hg"] else argv


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
        proc = subprocess.run(
            _hg_argv(argv), cwd=cwd, input=input, capture_output=True, env=env, check=False
        )
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
    destination), without ``.hg_archival.txt`` (whose tag lines would write hg's tags cache
    in the repository)."""
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
                    # no .hg_archival.txt: computing its tag lines writes hg's tags cache
                    # (.hg/cache/tags2-visible) into the user's repository
                    "--config",
                    "ui.archivemeta=False",
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


class HgCommandServer:
    """One ``hg serve --cmdserver pipe`` process for many read-only queries (Mercurial's
    command-server protocol: a ``runcommand`` request, then channel frames — ``o`` output,
    ``e`` error, ``r`` the exit status; ``I``/``L`` input requests get an empty answer).
    Raises ``OSError`` when the server cannot start, so callers can fall back to a process
    per query."""

    def __init__(self, repo: Path) -> None:
        env = dict(os.environ, **READ_ONLY_ENV)
        env["HGENCODING"] = "utf-8"
        argv = ["hg", *hg_readonly_args(), "serve", "--cmdserver", "pipe", "-R", str(repo)]
        argv += ["--config", "ui.interactive=False"]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=str(repo),
        )
        try:
            channel, hello = self._read()
        except OSError:
            self.close()
            raise
        if channel != b"o" or b"runcommand" not in hello:
            self.close()
            raise OSError(f"hg command server said {hello[:200]!r}")

    def _read(self) -> tuple[bytes, bytes]:
        assert self.proc.stdout is not None
        head = self.proc.stdout.read(5)
        if len(head) < 5:
            raise OSError("the hg command server closed its pipe")
        channel, n = head[:1], struct.unpack(">I", head[1:])[0]
        if channel in (b"I", b"L"):  # an input request: n is the size wanted, no data
            return channel, b""
        data = self.proc.stdout.read(n)
        if len(data) < n:
            raise OSError("the hg command server closed its pipe")
        return channel, data

    def run(self, args: list[str]) -> tuple[int, bytes, bytes]:
        """Run one hg command; returns (exit status, stdout, stderr)."""
        assert self.proc.stdin is not None
        payload = b"\0".join(os.fsencode(a) for a in args)
        self.proc.stdin.write(b"runcommand\n" + struct.pack(">I", len(payload)) + payload)
        self.proc.stdin.flush()
        out, err = [], []
        while True:
            channel, data = self._read()
            if channel == b"o":
                out.append(data)
            elif channel == b"e":
                err.append(data)
            elif channel == b"r":
                return struct.unpack(">i", data)[0], b"".join(out), b"".join(err)
            elif channel in (b"I", b"L"):
                self.proc.stdin.write(struct.pack(">I", 0))
                self.proc.stdin.flush()
            elif channel.isupper():  # a required channel we do not know
                raise OSError(f"hg command server sent unknown channel {channel!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def hg_convert(
    git_repo: Path, dest: Path, revs: list[str] | tuple[str, ...] = ()
) -> dict[str, str]:
    """Convert the git repository ``git_repo`` (up to the commits ``revs``; every branch when
    empty) into a new Mercurial repository ``dest`` with ``hg convert``, keeping messages as
    they are (``convert.git.committeractions=dropcommitter``: no ``committer:`` line added) and
    without tags; returns the map git commit → hg node. ``git_repo`` is only read."""
    rev_args: list[str] = []
    for r in revs:
        sha = run_vcs(["git", "-C", str(git_repo), "rev-parse", r + "^{commit}"])
        rev_args += ["--rev", sha.decode().strip()]
    argv = [
        "hg",
        "--config",
        "extensions.convert=",
        "--config",
        "convert.git.committeractions=dropcommitter",
        "--config",
        "convert.skiptags=True",
        "convert",
        "-q",
        *rev_args,
        str(git_repo),
        str(dest),
    ]
    run_vcs(argv, hint="Check that Mercurial's convert extension works here.")
    shamap = {}
    for line in (Path(dest) / ".hg" / "shamap").read_text().splitlines():
        g, h = line.split()
        shamap[g] = h
    return shamap
