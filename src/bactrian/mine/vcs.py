"""Mining VCS history (git and Mercurial) without touching the user's repository state: only
read commands (``git log``/``cat-file``/``diff-tree``/``ls-tree``/``archive``,
``hg log``/``status``/``cat``/``files``/``archive``) — no checkout, no index or working-copy
change. Working copies and bare repositories alike (central servers hold bare ones).
Mercurial runs as one command server for the whole run (``hg serve --cmdserver pipe``), not a
process per query. Commit times are the committer date (when the change entered the history).

Each commit becomes a ``change`` example; a commit over the size limits is split into
``vcs-part`` examples (:mod:`bactrian.mine.parts`) whose base is the parent revision plus the
earlier parts (``base["pre_diff"]``). Ids are derived from content, so the same history mined
from git and from its Mercurial conversion gives the same example ids.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bactrian import vcs
from bactrian.dataset.example import Example
from bactrian.errors import MiningError
from bactrian.mine.config import MineConfig
from bactrian.mine.context import TreeContext, decode_files, moved_from
from bactrian.mine.filemap import apply_to_map
from bactrian.mine.parts import (
    Part,
    cut_chain,
    merge_parts,
    over_limit,
    part_states,
    plan_parts,
    render_parts,
)
from bactrian.mine.textdiff import FileMap, render
from bactrian.progress import progress
from bactrian.registry import Registry

log = logging.getLogger(__name__)


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

    def close(self) -> None: ...


def _run(cmd: list[str], cwd: Path, *, input: bytes | None = None) -> bytes:
    return vcs.run_vcs(
        cmd,
        cwd,
        input=input,
        error=MiningError,
        hint="Check the repository path and the revision range.",
    )


def _range_ends(rev_range: str) -> list[str]:
    """The revisions a git-style range names (``A..B``, ``A...B``, ``^A B``, ``B``)."""
    out = []
    for word in rev_range.split():
        for end in re.split(r"\.\.\.?", word.lstrip("^")):
            if end:
                out.append(end)
    return out


class GitReader:
    kind = "git"

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def git(self, *args: str, input: bytes | None = None) -> bytes:
        return _run(["git", "-C", str(self.repo), *args], self.repo, input=input)

    def close(self) -> None:
        pass

    def check_range(self, rev_range: str) -> None:
        """Name a revision of ``rev_range`` that the repository lacks (git's own message is a
        raw ``fatal: ambiguous argument``)."""
        ends = _range_ends(rev_range)
        if not ends:
            raise MiningError(f"The range {rev_range!r} names no revision; give A..B or REV.")
        query = "".join(f"{end}^{{commit}}\n" for end in ends).encode()
        raw = self.git("cat-file", "--batch-check=%(objectname)", input=query).decode()
        for end, line in zip(ends, raw.splitlines(), strict=False):
            if line.endswith(" missing") or line.endswith(" ambiguous"):
                raise MiningError(
                    f"no revision {end!r} in {self.repo}; `git -C {self.repo} log --oneline` "
                    "and `git tag` list the revisions there are."
                )

    def commits(self, rev_range: str) -> list[Commit]:
        """Commits of ``rev_range``, oldest first; ``time`` is the committer date (when the
        change entered the history), not the author date."""
        self.check_range(rev_range)
        raw = self.git(
            "log", "--reverse", "--topo-order", "-z", "--format=%H%n%P%n%ct%n%B", rev_range
        ).decode()
        out = []
        for rec in raw.split("\0"):
            if not rec.strip():
                continue
            rev, parents_line, time_line, message = rec.lstrip("\n").split("\n", 3)
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
    """Mercurial history through one command server for the whole run (``hg serve
    --cmdserver pipe``: one process, no Python start-up per query); a process per query when
    the server cannot start."""

    kind = "hg"

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._server: vcs.HgCommandServer | None = None
        self._server_failed = False
        self._files: dict[str, list[str]] = {}
        # per commit of the ranges read so far: (added, modified, removed) and first parent
        self._changes: dict[str, tuple[list[str], list[str], list[str]]] = {}
        self._parents: dict[str, str | None] = {}

    def hg(self, *args: str) -> bytes:
        if self._server is None and not self._server_failed:
            try:
                self._server = vcs.HgCommandServer(self.repo)
            except OSError as exc:
                log.warning(
                    "%s: no hg command server (%s); one hg process per query", self.repo, exc
                )
                self._server_failed = True
        if self._server is not None:
            try:
                rc, out, err = self._server.run(list(args))
            except OSError as exc:  # the server died: a fresh one for the next query
                log.warning("%s: the hg command server stopped (%s); restarting it", self.repo, exc)
                self._server.close()
                self._server = None
                return _run(["hg", "-R", str(self.repo), *args], self.repo)
            if rc != 0:
                raise MiningError(
                    f"`hg -R {self.repo} {' '.join(args)}` failed ({rc}): "
                    f"{err.decode(errors='replace').strip()[:2000]}. "
                    "Check the repository path and the revision range."
                )
            return out
        return _run(["hg", "-R", str(self.repo), *args], self.repo)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def __del__(self) -> None:
        self.close()

    def _check_revs(self, revs: list[str]) -> None:
        for rev in revs:
            try:
                self.hg("log", "-r", rev, "-l", "1", "-T", "x")
            except MiningError as exc:
                if "unknown revision" in str(exc) or "parse error" in str(exc):
                    raise MiningError(
                        f"no revision {rev!r} in {self.repo}; `hg -R {self.repo} log` and "
                        "`hg tags` list the revisions there are."
                    ) from None
                raise

    def commits(self, rev_range: str) -> list[Commit]:
        if ".." in rev_range and "::" not in rev_range:  # git-style A..B → only(B, A)
            a, _, b = rev_range.partition("..")
            self._check_revs([r for r in (a, b) if r])
            rev_range = f"only({b or '.'}, {a})"
        tmpl = (
            "{node}\\0{p1.node}\\0{p2.node}\\0{date|hgdate}\\0"
            '{join(file_adds, "\\x01")}\\0{join(file_mods, "\\x01")}\\0'
            '{join(file_dels, "\\x01")}\\0{desc}\\0\\x1e\\0'
        )
        try:
            raw = self.hg("log", "-r", f"sort({rev_range}, rev)", "-T", tmpl).decode()
        except MiningError as exc:
            m = re.search(r"unknown revision '([^']*)'", str(exc))
            if m:
                raise MiningError(
                    f"no revision {m.group(1)!r} in {self.repo}; `hg -R {self.repo} log` and "
                    "`hg tags` list the revisions there are."
                ) from None
            raise
        out = []
        for rec in raw.split("\0\x1e\0"):
            if not rec.strip("\0"):
                continue
            node, p1, p2, date, adds, mods, dels, desc = rec.split("\0", 7)
            # what changed against the only parent, as `hg status` says (the same query,
            # answered for the whole range at once); not for merges, whose file lists hg
            # gives against both parents
            if p2 == NULL_HG:
                self._changes[node] = (
                    [p for p in adds.split("\x01") if p],
                    [p for p in mods.split("\x01") if p],
                    [p for p in dels.split("\x01") if p],
                )
            self._parents[node] = None if p1 == NULL_HG else p1
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
        known = self._changes.get(commit.rev)
        if known is not None and commit.parent == self._parents.get(commit.rev):
            return sorted({*known[0], *known[1], *known[2]})
        parent = commit.parent or "null"
        raw = self.hg("status", "--rev", parent, "--rev", commit.rev, "-mar", "--no-status", "-0")
        return sorted(p for p in raw.decode().split("\0") if p)

    def read(self, rev: str | None, paths: list[str]) -> FileMap:
        if rev is None or not paths:
            return {}
        existing = set(self.files(rev))
        wanted = [p for p in paths if p in existing]
        if not wanted:
            return {}
        # one query for all the files: path, size and content of each, back to back
        raw = self.hg(
            "cat", "-r", rev, "-T", "{path}\\0{size}\\0{data}", "--", *(f"path:{p}" for p in wanted)
        )
        out: FileMap = {}
        pos = 0
        while pos < len(raw):
            end_path = raw.index(b"\0", pos)
            end_size = raw.index(b"\0", end_path + 1)
            path = raw[pos:end_path].decode("utf-8", "surrogateescape")
            size = int(raw[end_path + 1 : end_size])
            out[path] = raw[end_size + 1 : end_size + 1 + size]
            pos = end_size + 1 + size
        if set(out) != set(wanted):  # paths printed differently: read them one by one
            return {p: self.hg("cat", "-r", rev, "--", f"path:{p}") for p in wanted}
        return out

    def files(self, rev: str | None) -> list[str]:
        if rev is None:
            return []
        if rev not in self._files:
            if len(self._files) > 8:
                self._files.pop(next(iter(self._files)))
            parent = self._parents.get(rev)
            if parent is not None and parent in self._files and rev in self._changes:
                # the parent's files and what this commit added and removed
                adds, _, dels = self._changes[rev]
                self._files[rev] = sorted((set(self._files[parent]) - set(dels)) | set(adds))
            else:
                raw = self.hg("files", "-r", rev, "-0")
                self._files[rev] = sorted(p for p in raw.decode().split("\0") if p)
        return list(self._files[rev])

    def archive(self, rev: str, dest: Path) -> None:
        vcs.archive(self.repo, "hg", rev, dest, error=MiningError)


VCS_READERS: Registry[Callable[[Path], VcsReader]] = Registry("VCS")
VCS_READERS.add("git", GitReader)
VCS_READERS.add("hg", HgReader)


def detect_kind(repo: Path) -> str | None:
    """``git`` or ``hg`` for a repository's root (a working copy or a bare repository)."""
    if (repo / ".hg").is_dir():
        return "hg"
    if (repo / ".git").exists():
        return "git"
    if (repo / "HEAD").is_file() and (repo / "objects").is_dir() and (repo / "refs").is_dir():
        return "git"  # bare (a central server's or a mirror)
    if (repo / "00changelog.i").exists() and (repo / "store").is_dir():
        return "hg"  # the .hg directory itself
    return None


def open_vcs(repo: Path, kind: str | None = None) -> VcsReader:
    """A reader for ``repo`` (kind detected from ``.git`` / ``.hg`` or a bare repository's
    layout unless given)."""
    given = Path(repo)
    repo = given.resolve()
    if not repo.exists():
        raise MiningError(
            f"{given} does not exist; pass the path of a git or Mercurial repository."
        )
    if not repo.is_dir():
        raise MiningError(f"{given} is not a directory; pass a repository's root directory.")
    if kind is None:
        kind = detect_kind(repo)
        if kind is None:
            raise MiningError(
                f"{repo} is neither a git nor a Mercurial repository (no .git or .hg, not a "
                "bare repository). Pass the repository's root directory."
            )
    if kind == "hg" and repo.name == ".hg" and not (repo / ".hg").is_dir():
        repo = repo.parent
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
    counts: dict[str, int] | None = None,
    checker: PartChecker | None = None,
) -> tuple[list[Example], dict[str, int]]:
    """Unfiltered examples for every non-merge commit in ``rev_range`` (git ``A..B``; hg
    revset), plus counts of what was skipped (``merge`` commits, split commits dropped). With
    ``squash_range`` the whole (linear) range is one change, split into parts when large.
    ``counts`` receives what splitting and context did (parts merged, chains cut, empty
    contexts); ``checker`` builds every part of a split commit (see :class:`PartChecker`)."""
    cfg = config or MineConfig()
    reader = open_vcs(repo, kind)
    try:
        skipped: dict[str, int] = {}
        counts = counts if counts is not None else {}
        examples: list[Example] = []
        commits = reader.commits(rev_range)
        if squash_range and commits:
            commits = [squash(commits)]
        # by commit date (stable): the same order from git and from Mercurial, whose
        # topological orders of a merged history differ; the earliest of two duplicates wins
        ordered = sorted(commits, key=lambda c: c.time)
        for commit in progress(ordered, "mining commits", "commit"):
            if commit.merge:
                skipped["merge"] = skipped.get("merge", 0) + 1
                continue
            examples.extend(commit_examples(reader, commit, cfg, counts, checker, skipped))
        return examples, skipped
    finally:
        reader.close()


class PartChecker(Protocol):
    """Builds the states of a split commit: ``check(reader, commit, diffs)`` → (the parent's
    label, one label per diff), each diff taking the parent to the state after one more
    part. A label has ``state`` ("green" / "red" / "unknown") and ``to_stats()``."""

    def check(
        self, reader: VcsReader, commit: Commit, diffs: list[str]
    ) -> tuple[Any, list[Any]]: ...


def _bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def commit_examples(
    reader: VcsReader,
    commit: Commit,
    cfg: MineConfig,
    counts: dict[str, int] | None = None,
    checker: PartChecker | None = None,
    skipped: dict[str, int] | None = None,
) -> list[Example]:
    counts = counts if counts is not None else {}
    skipped = skipped if skipped is not None else {}
    paths = reader.changed_paths(commit)
    base_files = reader.files(commit.parent)
    old = reader.read(commit.parent, paths)
    new = reader.read(commit.rev, paths)
    whole = render(old, new)
    if not whole:
        return []
    labels: list[tuple[Any, Any]] | None = None
    if cfg.split_large:
        planned = plan_parts(old, new, cfg.max_changed_lines, cfg.max_files)
        planned, cut = cut_chain(planned, cfg.max_changed_lines, cfg.max_files)
        if cut:
            _bump(counts, "chains_cut")
            _bump(counts, "parts_cut", cut)
        if not planned:
            _bump(skipped, "split_first_part_over_limit")
            return []
        states = part_states(old, new, planned)
        if checker is not None and len(planned) > 1:
            checked = _check_parts(reader, commit, old, new, planned, states, cfg, counts, checker)
            if checked is None:
                _bump(skipped, "split_part_red")
                return []
            planned, states, labels = checked
        parts = render_parts(old, planned, states) if len(planned) > 1 else [("", whole)]
        if len(planned) > 1:
            _bump(counts, "split_commits")
            _bump(counts, "parts", len(planned))
    else:
        parts = [("", whole)]
    kind = "change" if len(parts) == 1 else "vcs-part"
    out = []
    ctx_tree = TreeContext(base_files, lambda ps: reader.read(commit.parent, ps))
    moves = moved_from(old, new)
    limit = cfg.max_context_files
    for k, (pre_diff, diff) in enumerate(parts):
        touched = [p for p in paths if f"a/{p} b/{p}" in diff]
        moved = [q for p in touched for q in moves.get(p, [])]
        choice = ctx_tree.choose(
            touched,
            diff=diff,
            moved=moved,
            limit=limit,
            new_files=[p for p in touched if p not in old],
        )
        ctx = ctx_tree.read(choice.files)
        if pre_diff:  # the context shows the tree the part applies to
            ctx = _after_pre(ctx, old, new, pre_diff, choice.files)
        files = decode_files(ctx)
        stats: dict[str, Any] = {}
        if not files:
            stats["context_empty_reason"] = choice.empty_reason or "the context files are binary"
        if labels is not None:
            base_label, target_label = labels[k]
            stats.update(label_stats(base_label, target_label))
        key = hashlib.sha256(f"{commit.message}\0{commit.time}\0{pre_diff}".encode()).hexdigest()
        out.append(
            Example(
                source=f"{reader.kind}:{reader.repo}",
                kind=kind,
                diff=diff,
                context={"files": files, "diagnostics": []},
                description=commit.message,
                base={
                    "type": reader.kind,
                    "repo": str(reader.repo),
                    "rev": commit.parent,
                    "commit": commit.rev,
                    "message": commit.message,
                    "pre_diff": pre_diff,
                    "part": k + 1,
                    "parts": len(parts),
                    "key": key,
                },
                stats=stats,
                created_at=commit.time,
            )
        )
    return out


def label_stats(base: Any, target: Any) -> dict[str, Any]:
    """An example's build labels as stats: ``base_build``/``target_build`` and their
    diagnostics."""
    return {**base.to_stats("base"), **target.to_stats("target")}


def _check_parts(
    reader: VcsReader,
    commit: Commit,
    old: FileMap,
    new: FileMap,
    parts: list[Part],
    states: list[FileMap],
    cfg: MineConfig,
    counts: dict[str, int],
    checker: PartChecker,
) -> tuple[list[Part], list[FileMap], list[tuple[Any, Any]]] | None:
    """Build every part; a part that leaves the tree red is merged with the next one (while
    the merge fits the limits). When that cannot fix it, the commit is kept whole if it
    builds as a whole, else dropped (``None``)."""
    base, after = checker.check(reader, commit, [render(old, s) for s in states])
    _bump(counts, "parts_checked", len(after))
    if base.state != "green":
        _bump(counts, "split_base_not_green")
    else:
        k = 0
        while k < len(parts) - 1:
            if after[k].state == "green":
                k += 1
                continue
            merged = merge_parts(parts, k)
            if over_limit(merged[k], cfg.max_changed_lines, cfg.max_files):
                break
            parts, states, after = merged, states[:k] + states[k + 1 :], after[:k] + after[k + 1 :]
            _bump(counts, "parts_merged")
        if any(a.state != "green" for a in after[:-1]):
            if after[-1].state != "green":
                _bump(counts, "split_dropped_red")
                return None
            _bump(counts, "split_kept_whole")
            whole = [Part([u for p in parts for u in p.units])]
            return whole, [states[-1]], [(base, after[-1])]
    _bump(counts, "parts_green", sum(a.state == "green" for a in after))
    befores = [base, *after[:-1]]
    return parts, states, list(zip(befores, after, strict=True))


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
