"""The CES contract: bases, jobs, stage results, verdicts and the backend seam.

Everything here is plain data with ``to_dict``/``from_dict`` so verdicts travel unchanged over
HTTP, Ray and JSON files. Backends (``local`` process pool, ``ray`` actors) implement
:class:`CESBackend`; their factories ``factory(config) -> CESBackend`` are registered in one
place, :data:`bactrian.ces.backends.BACKENDS`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from bactrian.ces.config import CESConfig
from bactrian.types import Diagnostic

STAGES: tuple[str, ...] = ("apply", "parse", "typecheck", "build", "test")
"""The stages every job goes through, in order; a job stops at the first failure."""

JUDGING_STAGES: tuple[str, ...] = ("typecheck", "build", "test")
"""The stages that judge a diff (``apply`` and ``parse`` only gate them): a base needs a command
for at least one of them, and ``ok`` needs every one it has to have run and passed."""

StageStatus = Literal["passed", "failed", "skipped", "timeout", "error"]
STAGE_STATUSES: tuple[str, ...] = ("passed", "failed", "skipped", "timeout", "error")


@dataclass
class BaseSpec:
    """What to warm: a directory, or a git/Mercurial repository at a revision.

    ``stages`` overrides stage commands by name (``{"build": "dune build @install"}``); an empty
    string skips that stage. ``adapter`` picks the language adapter ("dune", "generic", "auto").

    ``require_green`` (default) refuses a base that does not pass its own stages. Judging a
    *fix* (a gold diff mined from a red → green episode) needs its red base: with
    ``require_green=False`` the base is warmed as far as it builds and judged all the same;
    the test-count guard then has no baseline and is off.
    """

    source: str
    rev: str | None = None
    vcs: str | None = None  # "git" | "hg" | None (auto-detect)
    stages: dict[str, str] = field(default_factory=dict)
    adapter: str = "auto"
    resolved_rev: str | None = None  # filled in when the base is exported
    require_green: bool = True

    def key(self) -> str:
        """A stable id: the source, the (resolved) revision, adapter and stage commands."""
        src = (
            str(Path(self.source).expanduser().resolve()) if _is_local(self.source) else self.source
        )
        payload = json.dumps(
            {
                "source": src,
                "rev": self.resolved_rev or self.rev,
                "adapter": self.adapter,
                "stages": dict(sorted(self.stages.items())),
                **({} if self.require_green else {"require_green": False}),
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rev": self.rev,
            "vcs": self.vcs,
            "stages": dict(self.stages),
            "adapter": self.adapter,
            "resolved_rev": self.resolved_rev,
            "require_green": self.require_green,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BaseSpec:
        return cls(
            source=str(d["source"]),
            rev=d.get("rev"),
            vcs=d.get("vcs"),
            stages=dict(d.get("stages") or {}),
            adapter=d.get("adapter", "auto"),
            resolved_rev=d.get("resolved_rev"),
            require_green=bool(d.get("require_green", True)),
        )

    @classmethod
    def coerce(cls, base: BaseSpec | str | os.PathLike[str], rev: str | None = None) -> BaseSpec:
        if isinstance(base, BaseSpec):
            return base
        return cls(source=str(base), rev=rev)


def _is_local(source: str) -> bool:
    return "://" not in source


@dataclass
class Job:
    """One diff to judge against one base."""

    base: BaseSpec
    diff: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    allow_lenient: bool = False
    timeout_s: float | None = None
    # the test-edit policy for this job (None: the backend's [ces] edits_tests_policy)
    edits_tests_policy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.to_dict(),
            "diff": self.diff,
            "id": self.id,
            "allow_lenient": self.allow_lenient,
            "timeout_s": self.timeout_s,
            "edits_tests_policy": self.edits_tests_policy,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        return cls(
            base=BaseSpec.from_dict(d["base"]),
            diff=d["diff"],
            id=d.get("id") or uuid.uuid4().hex,
            allow_lenient=bool(d.get("allow_lenient", False)),
            timeout_s=d.get("timeout_s"),
            edits_tests_policy=d.get("edits_tests_policy"),
        )


@dataclass
class StageResult:
    """One stage's outcome. ``output`` is bounded (see ``CESConfig.limits.output_bytes``)."""

    name: str
    status: str  # one of STAGE_STATUSES
    duration_s: float = 0.0
    output: str = ""
    exit_code: int | None = None
    command: str | None = None  # the stage's command line, where one ran

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "duration_s": self.duration_s,
            "output": self.output,
            "exit_code": self.exit_code,
            "command": self.command,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageResult:
        return cls(
            name=d["name"],
            status=d["status"],
            duration_s=float(d.get("duration_s", 0.0)),
            output=d.get("output", ""),
            exit_code=d.get("exit_code"),
            command=d.get("command"),
        )


@dataclass
class Verdict:
    """The CES's answer for one job.

    ``furthest`` is the last stage reached without a failure (passed, or skipped on the way;
    ``None`` when even ``apply`` failed); ``ok`` means every judging stage the base has ran and
    passed, nothing failed, and the test guard was on (see :func:`is_ok`). ``flags`` name
    notable events: ``edits-tests``, ``lenient-apply``, ``sandbox-kill``, ``output-truncated``,
    ``timeout``, ``disk-limit``, ``memory-limit``, ``worker-rebuilt``, ``empty-diff``,
    ``retried``, ``test-guard-off``, ``tests-tampered``, ``parse-deferred``. ``test_report``
    says which suites ran, from where (``source``: the base's test files or the diff's), with
    which runner, and whether the guard was on: ``{"guard": "on"|"off"|"none", "uncounted":
    [...], "policy", "suites": [{runner, dir, total, failed, source}]}``.

    :attr:`state` is ``ok``, ``failed`` (a verdict on the diff) or ``error``: the machine
    failed (the sandbox did not start, the host ran out of memory or disk, a worker crashed),
    so nothing is known about the diff. An ``error`` verdict carries ``error`` (what failed),
    is never ``ok`` and has ``reward = None`` — a reward function passes that on, and TRL
    leaves such samples out instead of charging the diff.
    """

    job_id: str
    ok: bool
    furthest: str | None
    stages: list[StageResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    reward: float | None = 0.0  # None exactly when state == "error"
    tests: dict[str, int] | None = None  # {"passed": p, "failed": f, "total": t} where parsed
    worker: str = ""
    flags: list[str] = field(default_factory=list)
    apply: dict[str, Any] | None = None  # bactrian.diffs ApplyResult.to_dict()
    error: str | None = None  # an infrastructure error (not a verdict on the diff)
    test_report: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.error is not None:  # the machine's fault: no verdict on the diff, no reward
            self.ok = False
            self.reward = None

    @property
    def state(self) -> str:
        """``ok``, ``failed`` or ``error`` (see the class doc)."""
        if self.error is not None:
            return "error"
        return "ok" if self.ok else "failed"

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "state": self.state,
            "ok": self.ok,
            "furthest": self.furthest,
            "stages": [s.to_dict() for s in self.stages],
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "reward": self.reward,
            "tests": dict(self.tests) if self.tests is not None else None,
            "worker": self.worker,
            "flags": list(self.flags),
            "apply": self.apply,
            "error": self.error,
            "test_report": self.test_report,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(
            job_id=d["job_id"],
            ok=bool(d["ok"]),
            furthest=d.get("furthest"),
            stages=[StageResult.from_dict(s) for s in d.get("stages", [])],
            diagnostics=[Diagnostic.from_dict(x) for x in d.get("diagnostics", [])],
            reward=None if d.get("reward", 0.0) is None else float(d.get("reward", 0.0)),
            tests=d.get("tests"),
            worker=d.get("worker", ""),
            flags=list(d.get("flags", [])),
            apply=d.get("apply"),
            error=d.get("error"),
            test_report=d.get("test_report"),
        )

    def fingerprint(self) -> dict[str, Any]:
        """The verdict without timings, worker id and job id — equal for equal outcomes."""
        d = self.to_dict()
        d.pop("job_id")
        d.pop("worker")
        d["flags"] = sorted(f for f in d["flags"] if f != "worker-rebuilt")
        d["stages"] = [{"name": s.name, "status": s.status} for s in self.stages]
        return d


def is_ok(stages: Sequence[StageResult], judging: Sequence[str], *, guard_off: bool) -> bool:
    """Every stage reached without a failure, every judging stage of the base among them with
    status ``passed`` (never merely skipped), and the test guard on."""
    if len(stages) != len(STAGES) or any(s.status not in ("passed", "skipped") for s in stages):
        return False
    ran = {s.name for s in stages if s.status == "passed"}
    if not judging or not all(j in ran for j in judging):
        return False
    return not ("test" in judging and guard_off)


def stage_reward(
    stages: Sequence[StageResult], ok: bool, *, guard_off: bool, config: CESConfig
) -> float:
    """Graded: the weight of the furthest stage that *passed* before the first failure (a
    skipped stage never earns its weight); a test stage whose guard is off earns
    ``uncounted_test_weight`` instead of the test weight. Binary: 1.0 only when ``ok``."""
    if config.reward_mode == "binary":
        return 1.0 if ok else 0.0
    weights = config.reward_weights
    best: str | None = None
    for s in stages:
        if s.status == "skipped":
            continue
        if s.status != "passed":
            break
        best = s.name
    if best is None:
        return 0.0
    if best == "test" and guard_off:
        return float(config.uncounted_test_weight)
    return float(weights.get(best, 0.0))


@runtime_checkable
class CESBackend(Protocol):
    """Where jobs run: ``local`` (a pool of worker threads driving sandboxed subprocesses) or
    ``ray`` (the same :class:`bactrian.ces.worker.Worker` as Ray actors)."""

    name: str

    def warm(self, base: BaseSpec, workers: int | None = None) -> dict[str, Any]:
        """Prepare ``workers`` green trees for ``base``; returns ``{"key", "workers",
        "warm_s", ...}``. Raises :class:`bactrian.errors.BaseNotGreenError`."""
        ...

    def evaluate(self, jobs: Sequence[Job]) -> list[Verdict]:
        """Judge jobs (warming their bases as needed); verdicts in job order."""
        ...

    def status(self) -> dict[str, Any]:
        """``{"backend", "bases": [...], "workers", "queue_depth", "counters": {...}}``."""
        ...

    def close(self) -> None: ...


class BackendFactory(Protocol):
    """What :data:`bactrian.ces.backends.BACKENDS` holds: ``factory(config, address=None)``
    (``address``: where a distributed backend's cluster is; others refuse one)."""

    def __call__(self, config: CESConfig, *, address: str | None = None) -> CESBackend: ...
