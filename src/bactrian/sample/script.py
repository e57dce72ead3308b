"""The building blocks of a scripted editing session: edits, timed steps, the session, and the
episodes mining its replay must yield.

An :class:`Edit` writes a whole file, replaces one exact snippet (it must occur exactly once,
so a script cannot silently drift from the workspace it edits) or deletes a file. A
:class:`Step` is what a developer does between two snapshots: a few edits at a scripted time.
``Step.expect`` is a test oracle only — the build state the script's author intends that step
to have. Nothing in recording reads it: every recorded status comes from a real build.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from bactrian.errors import WorkspaceError

EditOp = Literal["write", "replace", "delete"]
Expect = Literal["green", "red"]
EpisodeKind = Literal["fix", "change"]


def check_relpath(path: str) -> str:
    """``path`` if it is a plain relative POSIX path inside the tree, else ``ValueError``."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path or str(p) != path:
        raise ValueError(f"edit path {path!r} must be a normalised relative path inside the tree")
    return path


@dataclass(frozen=True)
class Edit:
    """One change to one file. Build with :meth:`write`, :meth:`replace` or :meth:`delete`."""

    op: EditOp
    path: str
    content: str | None = None  # write: the whole new content
    old: str | None = None  # replace: the exact snippet, present exactly once
    new: str | None = None  # replace: what it becomes

    def __post_init__(self) -> None:
        check_relpath(self.path)
        if self.op == "write" and self.content is None:
            raise ValueError(f"write of {self.path} needs content")
        if self.op == "replace" and (not self.old or self.new is None or self.old == self.new):
            raise ValueError(f"replace in {self.path} needs a non-empty old snippet and a new one")

    @classmethod
    def write(cls, path: str, content: str) -> Edit:
        return cls("write", path, content=content)

    @classmethod
    def replace(cls, path: str, old: str, new: str) -> Edit:
        return cls("replace", path, old=old, new=new)

    @classmethod
    def delete(cls, path: str) -> Edit:
        return cls("delete", path)

    def apply_to(self, files: dict[str, str]) -> None:
        """Apply to an in-memory tree (relative path → text), in place."""
        if self.op == "write":
            assert self.content is not None
            files[self.path] = self.content
            return
        if self.path not in files:
            raise WorkspaceError(
                f"Cannot {self.op} {self.path}: the file does not exist. The workspace is not "
                "in the state this session expects; replay into a fresh copy of the sample."
            )
        if self.op == "delete":
            del files[self.path]
            return
        assert self.old is not None and self.new is not None
        count = files[self.path].count(self.old)
        if count != 1:
            first = self.old.strip().splitlines()[0] if self.old.strip() else self.old
            raise WorkspaceError(
                f"Cannot edit {self.path}: the snippet starting {first!r} occurs {count} times "
                "(expected exactly once). The workspace is not in the state this session "
                "expects; replay into a fresh copy of the sample."
            )
        files[self.path] = files[self.path].replace(self.old, self.new)

    def apply(self, root: Path) -> None:
        """Apply to the tree under ``root`` on disk (only ``root / self.path`` is touched)."""
        target = root / self.path
        files: dict[str, str] = {}
        if self.op != "write" and target.is_file():
            files[self.path] = target.read_text(encoding="utf-8")
        self.apply_to(files)
        if self.path in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files[self.path], encoding="utf-8")
        else:
            target.unlink()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op == "write":
            d["content"] = self.content
        elif self.op == "replace":
            d["old"], d["new"] = self.old, self.new
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Edit:
        return cls(d["op"], d["path"], content=d.get("content"), old=d.get("old"), new=d.get("new"))


@dataclass(frozen=True)
class Step:
    """What the developer does before one snapshot: ``edits`` at scripted time ``at_s``.

    ``expect`` is the build state the script intends for the snapshot taken after this step —
    a test oracle, never a recorded label.
    """

    at_s: float
    title: str
    edits: list[Edit] = field(default_factory=list)
    expect: Expect = "green"

    def to_dict(self) -> dict[str, Any]:
        return {
            "at_s": self.at_s,
            "title": self.title,
            "expect": self.expect,
            "edits": [e.to_dict() for e in self.edits],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Step:
        return cls(
            at_s=float(d["at_s"]),
            title=d["title"],
            edits=[Edit.from_dict(e) for e in d.get("edits", [])],
            expect=d.get("expect", "green"),
        )


@dataclass(frozen=True)
class Session:
    """An ordered list of steps. Step 0 is the untouched workspace at t=0 (no edits), so the
    replay's snapshot number ``k`` (0-based; ``seq`` ``k + 1`` in the store) is step ``k``."""

    name: str
    steps: list[Step]

    def __post_init__(self) -> None:
        if not self.steps or self.steps[0].at_s != 0 or self.steps[0].edits:
            raise ValueError("a session starts with step 0: no edits at t=0")
        for prev, cur in zip(self.steps, self.steps[1:], strict=False):
            if cur.at_s <= prev.at_s:
                raise ValueError(f"step {cur.title!r} is not later than {prev.title!r}")

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> Step:
        return self.steps[index]

    @property
    def duration_s(self) -> float:
        return self.steps[-1].at_s

    def expected_states(self) -> list[Expect]:
        return [s.expect for s in self.steps]

    def trees(self, base: Mapping[str, str]) -> list[dict[str, str]]:
        """The tree after each step, starting from ``base`` (relative path → text)."""
        files = dict(base)
        out = []
        for step in self.steps:
            for edit in step.edits:
                edit.apply_to(files)
            out.append(dict(files))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Session:
        return cls(name=d["name"], steps=[Step.from_dict(s) for s in d["steps"]])


@dataclass(frozen=True)
class ExpectedEpisode:
    """An episode mining the replayed timeline must yield.

    * ``fix``: a red stretch ending green. ``start_step`` = its first red step, ``end_step`` =
      the first green step after it; the target diff is ``end_step - 1`` → ``end_step``.
    * ``change``: green → red … → green. ``start_step`` = the last green step before the red
      stretch, ``end_step`` = the first green after it; the target diff is
      ``start_step`` → ``end_step``.

    ``files`` are the paths the target diff touches.
    """

    kind: EpisodeKind
    start_step: int
    end_step: int
    files: frozenset[str]
    note: str

    @property
    def base_step(self) -> int:
        """The step whose tree the target diff applies to."""
        return self.end_step - 1 if self.kind == "fix" else self.start_step

    @property
    def target_step(self) -> int:
        return self.end_step

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start_step": self.start_step,
            "end_step": self.end_step,
            "base_step": self.base_step,
            "files": sorted(self.files),
            "note": self.note,
        }
