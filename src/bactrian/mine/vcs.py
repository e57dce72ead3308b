"""Mining VCS history (git and Mercurial) without touching the user's repository state: only
read commands (``git rev-list``/``cat-file``/``diff-tree``/``ls-tree``/``archive``,
``hg log``/``status --change``/``cat``/``files``/``archive``) — no checkout, no index or
working-copy change.

Each commit becomes a ``change`` example; a commit over the size limits is split into
``vcs-part`` examples (:mod:`bactrian.mine.parts`) whose base is the parent revision plus the
earlier parts (``base["pre_diff"]``). Ids are derived from content, so the same history mined
from git and from its Mercurial conversion gives the same example ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bactrian import vcs
from bactrian.dataset.example import Example
from bactrian.errors import MiningError
from bactrian.mine.config import MineConfig
from bactrian.mine.context import decode_files, relevant_files
from bactrian.mine.filemap import apply_to_map
from bactrian.mine.parts import split_change
from bactrian.mine.textdiff import FileMap, render
from bactrian.registry import Registry


@dataclass
class Commit:
    rev: str
    parent: str | None  # None for a root commit
    time: float
    message: str
    merge: bool = False


class VcsReader(Protocol):
    kind: str
    repo: Path

    def commits(self, rev_range: str) -> list[Commit]: ...

    def changed_paths(self, commit: Commit) -> list[str]: ...

    def read(self, rev: str | None, paths: list[str]) -> FileMap: ...

    def files(self, rev: str | None) -> list[str]: ...

    def archive(self, rev: str, dest: Path) -> None: ...


def _run(cmd: list[str], cwd: Path, *, input: bytes | None = None) -> bytes:
    return vcs.run_vcs(
        cmd,
        cwd,
        input=input,
        error=MiningError,
        hint="Check the repository path and the revision range.",
    )


class GitReader:
    kind = "git"

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def git(self, *args: str, input: bytes | None = None) -> bytes:
        return _run(["git", "-C", str(self.repo), *args], self.repo, input=input)

    def commits(self, rev_range: str) -> list[Commit]:
        revs = self.git("rev-list", "--reverse", "--topo-order", rev_range).decode().split()
        out = []
        for rev in revs:
            raw = self.git("log", "-1", "--format=%P%n%at%n%B", rev).decode()
            parents_line, time_line, message = raw.split("\n", 2)
            parents = parents_line.split()
            out.append(
                Commit(
                    rev=rev,
                    parent=parents[0] if parents else None,
                    time=float(time_line),
                    message=message.strip(),
                    merge=len(parents) > 1,
                )
            )
        return out

    def changed_paths(self, commit: Commit) -> list[str]:
        if commit.parent is None:
            raw = self.git(
                "diff-tree",
                "-r",
                "--root",
                "--no-commit-id",
                "--name-only",
                "--no-renames",
                "-z",
                commit.rev,
            )
        else:
            raw = self.git(
                "diff-tree",
                "-r",
                "--no-commit-id",
                "--name-only",
                "--no-renames",
                "-z",
                commit.parent,
                commit.rev,
            )
        return sorted(p for p in raw.decode().split("\0") if p)

    def read(self, rev: str | None, paths: list[str]) -> FileMap:
        if rev is None or not paths:
            return {}
        query = "".join(f"{rev}:{p}\n" for p in paths).encode()
        raw = self.git("cat-file", "--batch", input=query)
        out: FileMap = {}
        pos = 0
        for p in paths:
            nl = raw.index(b"\n", pos)
            header = raw[pos:nl].decode()
            pos = nl + 1
            if header.endswith(" missing"):
                continue
            size = int(header.split()[2])
            out[p] = raw[pos : pos + size]
            pos += size + 1
        return out

    def files(self, rev: str | None) -> list[str]:
        if rev is None:
            return []
        raw = self.git("ls-tree", "-r", "--name-only", "-z", rev)
        return sorted(p for p in raw.decode().split("\0") if p)

    def archive(self, rev: str, dest: Path) -> None:
        vcs.archive(self.repo, "git", rev, dest, error=MiningError)


NULL_HG = "0" * 40


class HgReader:
    kind = "hg"

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def hg(self, *args: str) -> bytes:
        return _run(["hg", "-R", str(self.repo), *args], self.repo)

    def commits(self, rev_range: str) -> list[Commit]:
        if ".." in rev_range and "::" not in rev_range:  # git-style A..B → only(B, A)
            a, _, b = rev_range.partition("..")
            rev_range = f"only({b or '.'}, {a})"
        tmpl = "{node}\\0{p1.node}\\0{p2.node}\\0{date|hgdate}\\0{desc}\\0\\0"
        raw = self.hg("log", "-r", f"sort({rev_range}, rev)", "-T", tmpl).decode()
        out = []
        for rec in raw.split("\0\0"):
            if not rec.strip("\0"):
                continue
            node, p1, p2, date, desc = rec.split("\0", 4)
            out.append(
                Commit(
                    rev=node,
                    parent=None if p1 == NULL_HG else p1,
                    time=float(date.split()[0]),
                    message=desc.strip(),
                    merge=p2 != NULL_HG,
                )
            )
        return out

    def changed_paths(self, commit: Commit) -> list[str]:
        parent = commit.parent or "null"
        raw = self.hg("status", "--rev", parent, "--rev", commit.rev, "-mar", "--no-status", "-0")
        return sorted(p for p in raw.decode().split("\0") if p)

    def read(self, rev: str | None, paths: list[str]) -> FileMap:
        if rev is None or not paths:
            return {}
        existing = set(self.files(rev))
        out: FileMap = {}
        for p in paths:
            if p in existing:
                out[p] = self.hg("cat", "-r", rev, "--", f"path:{p}")
        return out

    def files(self, rev: str | None) -> list[str]:
        if rev is None:
            return []
        raw = self.hg("files", "-r", rev, "-0")
        return sorted(p for p in raw.decode().split("\0") if p)

    def archive(self, rev: str, dest: Path) -> None:
        vcs.archive(self.repo, "hg", rev, dest, error=MiningError)


VCS_READERS: Registry[Callable[[Path], VcsReader]] = Registry("VCS")
VCS_READERS.add("git", GitReader)
VCS_READERS.add("hg", HgReader)


def open_vcs(repo: Path, kind: str | None = None) -> VcsReader:
    """A reader for ``repo`` (kind detected from ``.git`` / ``.hg`` unless given)."""
    repo = Path(repo).resolve()
    if kind is None:
        if (repo / ".hg").is_dir():
            kind = "hg"
        elif (repo / ".git").exists():
            kind = "git"
        else:
            raise MiningError(
                f"{repo} is neither a git nor a Mercurial repository (no .git or .hg). "
                "Pass the repository's root directory."
            )
    reader: VcsReader = VCS_READERS.get(kind)(repo)
    return reader


def squash(commits: list[Commit]) -> Commit:
    """The whole range as one change: first commit's parent → last commit."""
    return Commit(
        rev=commits[-1].rev,
        parent=commits[0].parent,
        time=commits[-1].time,
        message="\n\n".join(c.message for c in commits),
    )


def mine_history(
    repo: Path,
    rev_range: str,
    config: MineConfig | None = None,
    *,
    kind: str | None = None,
    squash_range: bool = False,
) -> tuple[list[Example], dict[str, int]]:
    """Unfiltered examples for every non-merge commit in ``rev_range`` (git ``A..B``; hg
    revset), plus counts of what was skipped (``merge`` commits). With ``squash_range`` the
    whole (linear) range is one change, split into parts when large."""
    cfg = config or MineConfig()
    reader = open_vcs(repo, kind)
    skipped: dict[str, int] = {}
    examples: list[Example] = []
    commits = reader.commits(rev_range)
    if squash_range and commits:
        return commit_examples(reader, squash(commits), cfg), skipped
    for commit in commits:
        if commit.merge:
            skipped["merge"] = skipped.get("merge", 0) + 1
            continue
        examples.extend(commit_examples(reader, commit, cfg))
    return examples, skipped


def commit_examples(reader: VcsReader, commit: Commit, cfg: MineConfig) -> list[Example]:
    paths = reader.changed_paths(commit)
    old = reader.read(commit.parent, paths)
    new = reader.read(commit.rev, paths)
    base_files = reader.files(commit.parent)
    whole = render(old, new)
    if not whole:
        return []
    if cfg.split_large:
        parts = split_change(old, new, cfg.max_changed_lines, cfg.max_files)
    else:
        parts = [("", whole)]
    kind = "change" if len(parts) == 1 else "vcs-part"
    out = []
    context_cache = reader.read(commit.parent, relevant_files(paths, base_files))
    limit = cfg.max_context_files
    for k, (pre_diff, diff) in enumerate(parts):
        touched = [p for p in paths if f"a/{p} b/{p}" in diff]
        rel = relevant_files(touched, base_files, limit)
        ctx = {p: context_cache[p] for p in rel if p in context_cache}
        if pre_diff:  # the context shows the tree the part applies to
            ctx = _after_pre(ctx, old, new, pre_diff, rel)
        key = hashlib.sha256(f"{commit.message}\0{commit.time}\0{pre_diff}".encode()).hexdigest()
        out.append(
            Example(
                source=f"{reader.kind}:{reader.repo}",
                kind=kind,
                diff=diff,
                context={"files": decode_files(ctx), "diagnostics": []},
                description=commit.message,
                base={
                    "type": reader.kind,
                    "repo": str(reader.repo),
                    "rev": commit.parent,
                    "commit": commit.rev,
                    "pre_diff": pre_diff,
                    "part": k + 1,
                    "parts": len(parts),
                    "key": key,
                },
                created_at=commit.time,
            )
        )
    return out


def _after_pre(ctx: FileMap, old: FileMap, new: FileMap, pre_diff: str, rel: list[str]) -> FileMap:
    """Context files as they are after the earlier parts (files the pre_diff touched take their
    intermediate content, reconstructed by applying the pre_diff)."""
    touched = {p for p in rel if f"a/{p} b/{p}" in pre_diff}
    if not touched:
        return ctx
    state = apply_to_map({p: old[p] for p in touched if p in old}, pre_diff, only=touched)
    out = dict(ctx)
    for p in touched:
        if p in state:
            out[p] = state[p]
        else:
            out.pop(p, None)
    return out
