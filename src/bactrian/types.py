"""Data types shared by several parts: build states, compiler diagnostics, build results.

Everything here is plain data with ``to_dict``/``from_dict`` so it can go into SQLite, JSON,
datasets and over HTTP/JSON-RPC unchanged.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class BuildState(enum.StrEnum):
    """Outcome of a build probe. ``unknown`` means "no trustworthy answer" (timeout, the build
    tool missing, a build still running) and breaks mining episodes."""

    GREEN = "green"
    RED = "red"
    UNKNOWN = "unknown"


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    ALERT = "alert"
    INFO = "info"


@dataclass(frozen=True)
class Diagnostic:
    """One compiler message. Lines are 1-based; columns are 0-based character offsets as OCaml
    prints them (``characters 4-9``); ``end_line``/``end_col`` cover multi-line ranges.

    ``kind`` is a finer classification where the parser knows it: ``syntax`` (parse errors),
    ``type``, ``unbound``, ``warning``, ``test`` (failing test), or ``other``.
    """

    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    severity: Severity
    message: str
    kind: str = "other"
    code: str | None = None  # e.g. a warning number "32" or error name "unused-value"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = self.severity.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diagnostic:
        return cls(
            file=d["file"],
            line=int(d["line"]),
            col=int(d["col"]),
            end_line=int(d["end_line"]),
            end_col=int(d["end_col"]),
            severity=Severity(d["severity"]),
            message=d["message"],
            kind=d.get("kind", "other"),
            code=d.get("code"),
        )

    def headline(self) -> str:
        """``file:line:col: error: first line of the message`` — for one-line listings."""
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.file}:{self.line}:{self.col}: {self.severity.value}: {first}"


@dataclass
class BuildResult:
    """What a build probe reports for one state of a tree."""

    state: BuildState
    duration_s: float
    diagnostics: list[Diagnostic] = field(default_factory=list)
    log: str = ""
    command: str = ""
    exit_code: int | None = None
    probe: str = ""  # name of the probe that produced it

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "duration_s": self.duration_s,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "log": self.log,
            "command": self.command,
            "exit_code": self.exit_code,
            "probe": self.probe,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BuildResult:
        return cls(
            state=BuildState(d["state"]),
            duration_s=float(d.get("duration_s", 0.0)),
            diagnostics=[Diagnostic.from_dict(x) for x in d.get("diagnostics", [])],
            log=d.get("log", ""),
            command=d.get("command", ""),
            exit_code=d.get("exit_code"),
            probe=d.get("probe", ""),
        )
