"""Plain data for diffs: a :class:`Patch` of :class:`FilePatch` es of :class:`Hunk` s, the limits
an application obeys, and the per-file / per-hunk results of applying one.

Lines are ``str`` and keep their terminator (``"\\n"``, or ``"\\r\\n"`` in CRLF files); a last
line without a terminator is a file without a trailing newline. Hunk positions are 1-based, as
in ``@@ -a,b +c,d @@``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bactrian.errors import DiffApplyError

#: Rungs of the lenient ladder, in the order they are tried.
RUNGS: tuple[str, ...] = ("exact", "offset", "recount", "whitespace", "context", "fuzzy")

FileStatus = Literal["modified", "added", "deleted", "renamed", "copied", "failed"]


@dataclass
class Hunk:
    """One ``@@`` hunk. ``lines`` are ``(tag, text)`` with tag ``" "``, ``"-"`` or ``"+"``.

    ``old_start``/``new_start`` are ``None`` for a bare ``@@`` header (no numbers, as models
    write them). ``counts_ok`` is False when the header's counts disagree with the body (the
    body was read by its line prefixes instead).
    """

    old_start: int | None
    old_count: int | None
    new_start: int | None
    new_count: int | None
    lines: list[tuple[str, str]] = field(default_factory=list)
    section: str = ""
    counts_ok: bool = True
    header_line: int = 0  # 1-based line of the @@ header in the diff text (0 = synthesized)

    @property
    def old_lines(self) -> list[str]:
        return [t for tag, t in self.lines if tag != "+"]

    @property
    def new_lines(self) -> list[str]:
        return [t for tag, t in self.lines if tag != "-"]

    @property
    def numbered(self) -> bool:
        return self.old_start is not None

    def changed(self) -> int:
        return sum(1 for tag, _ in self.lines if tag != " ")


@dataclass
class FilePatch:
    """The change to one file. ``old_path`` is ``None`` for a new file, ``new_path`` ``None``
    for a deleted one; for a rename or copy both are set and differ."""

    old_path: str | None
    new_path: str | None
    hunks: list[Hunk] = field(default_factory=list)
    old_mode: str | None = None
    new_mode: str | None = None
    is_rename: bool = False
    is_copy: bool = False
    similarity: int | None = None
    binary: bool = False
    git_header: bool = False

    @property
    def path(self) -> str:
        """The path the change ends at (the old path for a deletion)."""
        p = self.new_path if self.new_path is not None else self.old_path
        assert p is not None
        return p

    @property
    def is_new(self) -> bool:
        return self.old_path is None

    @property
    def is_delete(self) -> bool:
        return self.new_path is None

    def added_removed(self) -> tuple[int, int]:
        added = sum(1 for h in self.hunks for tag, _ in h.lines if tag == "+")
        removed = sum(1 for h in self.hunks for tag, _ in h.lines if tag == "-")
        return added, removed


@dataclass
class Patch:
    """A multi-file diff."""

    files: list[FilePatch] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.files)

    def stats(self) -> dict[str, int]:
        """Files, added and removed lines, and ``changed`` (added + removed)."""
        added = removed = 0
        for fp in self.files:
            a, r = fp.added_removed()
            added += a
            removed += r
        return {
            "files": len(self.files),
            "added": added,
            "removed": removed,
            "changed": added + removed,
        }


def touched_paths(patch: Patch) -> list[str]:
    """Every old and new path the patch names, sorted, without duplicates."""
    out: set[str] = set()
    for fp in patch.files:
        for p in (fp.old_path, fp.new_path):
            if p is not None:
                out.add(p)
    return sorted(out)


@dataclass(frozen=True)
class DiffLimits:
    """What an application refuses: files larger than ``max_file_bytes`` (before or after),
    patches touching more than ``max_files`` files, and (with ``max_seconds``) placing hunks
    for longer than that (:class:`bactrian.errors.DiffTimeoutError`)."""

    max_file_bytes: int = 4 * 1024 * 1024
    max_files: int = 1000
    max_seconds: float | None = None


@dataclass
class HunkResult:
    """How one hunk went: ``rung`` names the ladder rung that applied it (``None``: failed, see
    ``error``); ``offset`` is how many lines away from its stated place it landed."""

    index: int
    rung: str | None
    offset: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "rung": self.rung, "offset": self.offset, "error": self.error}


@dataclass
class FileResult:
    path: str
    status: FileStatus
    hunks: list[HunkResult] = field(default_factory=list)
    error: str | None = None
    old_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old_path": self.old_path,
            "status": self.status,
            "error": self.error,
            "hunks": [h.to_dict() for h in self.hunks],
        }


@dataclass
class ApplyResult:
    """The outcome of applying a patch. ``ok`` is True only when every file applied; then
    ``changed_paths`` lists what was (or, in a dry run, would be) written or removed."""

    ok: bool
    files: list[FileResult] = field(default_factory=list)
    changed_paths: list[str] = field(default_factory=list)
    lenient: bool = False
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        """Hunks applied cleanly (exact), leniently (any other rung) and failed."""
        c = {"clean": 0, "lenient": 0, "failed": 0}
        for f in self.files:
            for h in f.hunks:
                if h.rung is None:
                    c["failed"] += 1
                elif h.rung == "exact":
                    c["clean"] += 1
                else:
                    c["lenient"] += 1
        return c

    def rungs(self) -> dict[str, int]:
        """How many hunks each rung applied."""
        out: dict[str, int] = {}
        for f in self.files:
            for h in f.hunks:
                if h.rung is not None:
                    out[h.rung] = out.get(h.rung, 0) + 1
        return out

    def errors(self) -> list[str]:
        out = []
        for f in self.files:
            if f.error:
                out.append(f"{f.path}: {f.error}")
            for h in f.hunks:
                if h.error and h.rung is None:
                    out.append(f"{f.path}: hunk #{h.index + 1}: {h.error}")
        return out

    def summary(self) -> str:
        c = self.counts()
        head = "applied" if self.ok else "NOT applied"
        if self.ok and self.dry_run:
            head = "applies"
        text = (
            f"{head}: {len(self.files)} file(s), {c['clean']} hunk(s) clean, "
            f"{c['lenient']} lenient, {c['failed']} failed"
        )
        errs = self.errors()
        if errs:
            text += "\n" + "\n".join("  " + e for e in errs)
        return text

    def raise_for_status(self) -> None:
        """Raise :class:`~bactrian.errors.DiffApplyError` unless the patch applied."""
        if not self.ok:
            raise DiffApplyError(
                "The diff does not apply; nothing was written.\n"
                + "\n".join(self.errors())
                + "\nRegenerate the diff against the current files, or apply it leniently."
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "lenient": self.lenient,
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "rungs": self.rungs(),
            "changed_paths": list(self.changed_paths),
            "files": [f.to_dict() for f in self.files],
        }
