"""One CES worker: its own copy of a base tree, built green, judging one job at a time.

Layout under ``root``::

    root/tree/    the working tree (sources + ``_build``); bound read-write into the sandbox
    root/base/    the tree's source state right after warming (what every reset restores)
    root/state.json  base tree hash, base test summary, uid — lets a later process reuse it

Job flow: apply → parse → typecheck → build → test, stop at the first failure.

Isolation ``overlay`` (the default as root; required for the bwrap sandbox): each job runs in a
private mount namespace on a throw-away overlay of the warm tree (``tree/``, with its
``_build``, is the read-only lower layer; the upper layer is a tmpfs of ``max_disk_mb``, the
job's disk) and in a memory cgroup of its own (see :mod:`bactrian.ces.isolation`). Nothing the
job writes — sources, ``_build``, links, permissions, root-level ``_opam``/``.git`` — outlives
it; the warm tree is never written by a job and is verified (hash of its sources, stat-cached)
after each one. Host-side code touches the merged tree only before any of the job's code ran
(applying the diff; the ``pristine`` policy's undo), and never follows a link.

Isolation ``reset`` (trusted diffs only, sandbox ``none``): the job writes the warm tree, whose
sources are then reset to ``base/`` and verified by tree hash; a failed verification rebuilds
the worker.

A fault of the machine (the layer or cgroup cannot be set up — e.g. the host's disk is full —,
the sandbox does not start, the host runs out of memory) raises
:class:`~bactrian.ces.isolation.InfrastructureError`: the backend reports an ``error`` verdict
(no reward) after one retry on a fresh worker, never a verdict on the diff.

Tests: a diff that adds, edits or deletes a test file is flagged ``edits-tests``; what the
test stage then runs is ``edits_tests_policy`` (``both`` by default: the diff's tests and the
base's, see :mod:`bactrian.ces.teststage`). Results come from the runners' own records and are
compared with the base's suite by suite (:mod:`bactrian.ces.runners`).

No free rewards: a base where no judging stage (typecheck, build, test) has a command is refused
when it warms; ``ok`` needs every judging stage to have run and passed with the test guard on;
a skipped stage never earns its weight (:func:`bactrian.ces.contract.stage_reward`).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bactrian.ces import runners, teststage
from bactrian.ces.adapters import Adapter, DuneAdapter, get_adapter
from bactrian.ces.apply_stage import apply_diff
from bactrian.ces.config import CESConfig, Limits
from bactrian.ces.contract import (
    JUDGING_STAGES,
    STAGES,
    BaseSpec,
    Job,
    StageResult,
    Verdict,
    is_ok,
    stage_reward,
)
from bactrian.ces.fused import fused_command
from bactrian.ces.isolation import (
    InfrastructureError,
    JobLayer,
    MemoryCgroup,
    overlay_unavailable,
    run_in_private_mount_ns,
)
from bactrian.ces.sandbox import (
    SANDBOX_TREE,
    JobBounds,
    RunResult,
    Sandbox,
    get_sandbox,
    prepare_tree,
)
from bactrian.ces.stanzas import Stanzas, read_stanzas
from bactrian.ces.tree import (
    Entry,
    StatCache,
    chown_nofollow,
    copy_tree,
    export,
    manifest,
    resolve,
    restore,
    tree_hash,
)
from bactrian.ces.uids import UidLease, lease_uid
from bactrian.errors import BaseNotGreenError, CESError, NothingToJudgeError, SandboxError
from bactrian.types import Diagnostic

log = logging.getLogger(__name__)

STATE_VERSION = 1


def compute_reward(furthest: str | None, ok: bool, config: CESConfig) -> float:
    """The reward of a verdict that reached ``furthest`` (every stage up to it *passed*):
    graded = that stage's weight; binary = 1.0 only when ``ok``. Verdicts use
    :func:`bactrian.ces.contract.stage_reward`, which also refuses weight to skipped stages."""
    if config.reward_mode == "binary":
        return 1.0 if ok else 0.0
    if config.reward_mode != "graded":
        raise CESError(f"Unknown reward_mode {config.reward_mode!r}: use 'graded' or 'binary'.")
    if furthest is None:
        return 0.0
    return float(config.reward_weights.get(furthest, 0.0))


def is_test_path(path: str, globs: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, g) or fnmatch.fnmatch("./" + path, g) for g in globs) or any(
        part in ("test", "tests") for part in path.split("/")[:-1]
    )


BUILD_FILES = ("dune", "dune-project", "dune-workspace")


def _is_syntax(d: Diagnostic) -> bool:
    """A syntax error in a source file, or any error in a dune file (those only fail to parse)."""
    if d.severity.value != "error":
        return False
    return d.kind == "syntax" or d.file.rsplit("/", 1)[-1] in BUILD_FILES


class _Unfused(Exception):  # noqa: N818 - a signal, not an error
    """The fused typecheck + build run did not pass cleanly (see ``_fused_typecheck_build``)."""


@dataclass
class _JobContext:
    """The job in flight under the overlay isolation."""

    tree: Path  # the merged tree the job sees and writes
    layer: JobLayer
    cgroup: MemoryCgroup | None


def test_binds(base: dict[str, Entry], globs: list[str]) -> list[str]:
    """The base's test files as few paths as possible: a directory whose every file is a test
    file is one path (bound as a whole), other test files are listed one by one."""
    files = {rel for rel, (kind, _) in base.items() if kind in ("f", "x", "l")}
    mixed: set[str] = set()
    for rel in files:
        if not is_test_path(rel, globs):
            parts = rel.split("/")
            mixed.update("/".join(parts[:i]) for i in range(1, len(parts)))
    chosen: list[str] = []
    for rel in sorted(f for f in files if base[f][0] != "l" and is_test_path(f, globs)):
        parts = rel.split("/")
        pick = next(
            ("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) not in mixed),
            rel,
        )
        if not any(pick == c or pick.startswith(c + "/") for c in chosen):
            chosen.append(pick)
    return chosen


def binds_without(binds: list[str], edited: set[str], base: dict[str, Entry]) -> list[str]:
    """``binds`` (from :func:`test_binds`) without the ``edited`` paths: a bound directory that
    holds one of them is split into the base's other files in it."""
    out: list[str] = []
    for rel in binds:
        if rel in edited:
            continue
        if not any(e.startswith(rel + "/") for e in edited):
            out.append(rel)
            continue
        out += sorted(
            f
            for f, (kind, _) in base.items()
            if f.startswith(rel + "/") and kind in ("f", "x") and f not in edited
        )
    return out


class Worker:
    """A warm tree for one base. Not thread-safe: one job at a time (the pool ensures it)."""

    def __init__(
        self,
        worker_id: str,
        base: BaseSpec,
        root: Path,
        config: CESConfig,
        pristine: Path | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.id = worker_id
        self.base = base
        self.root = Path(root)
        self.config = config
        self.pristine = pristine
        self.sandbox = sandbox or get_sandbox(config.sandbox, config)
        self.tree = self.root / "tree"
        self.base_dir = self.root / "base"
        self._uid_lease: UidLease | None = None
        self.uid = self._lease_uid()
        self.adapter: Adapter | None = None
        self.base_manifest: dict[str, Entry] = {}
        self.base_hash = ""
        self.base_tests: dict[str, int] | None = None
        self.base_report: runners.Report | None = None  # the base's suites, by their records
        self.judging: list[str] = []  # the judging stages this base has commands for
        self._outcome: teststage.TestOutcome | None = None  # the current job's test stage
        self.base_green = True
        self.isolation = config.resolved_isolation()
        self.test_binds: list[str] = []
        self._test_run = "base"  # which tests the test stage runs now: base | diff | trust
        self._edited_tests: set[str] = set()
        self._job: _JobContext | None = None
        self._hash_cache: dict[str, StatCache] = {"tree": {}, "base": {}}
        self.warm_s = 0.0
        self.counters: dict[str, float] = {
            "jobs": 0,
            "resets": 0,
            "rebuilds": 0,
            "sandbox_kills": 0,
            "fused": 0,  # jobs whose typecheck + build passed as one dune run
            "unfused": 0,  # jobs judged again, staged, after a fused run that did not pass
        }
        self._lock = threading.Lock()

    def _lease_uid(self) -> int:
        """This worker's sandbox uid, leased machine-wide (:mod:`bactrian.ces.uids`): the one
        its warm tree had in an earlier process when that is free, else another free one."""
        if self._uid_lease is not None and self._uid_lease.held:
            return self._uid_lease.uid
        prefer = None
        try:
            prefer = int(json.loads((self.root / "state.json").read_text()).get("uid"))
        except (OSError, ValueError, TypeError, AttributeError):
            prefer = None
        self._uid_lease = lease_uid(str(self.root), prefer=prefer, registry=self.config.uid_dir)
        return self._uid_lease.uid

    # ----------------------------------------------------------------- warming
    def warm(self, clone_from: Worker | None = None) -> dict[str, Any]:
        """Make ``tree`` green. Reuses a tree left by an earlier process when its hash still
        matches; copies a warm sibling's tree (with ``_build``) when given; else copies the
        pristine export and builds from scratch."""
        start = time.monotonic()
        self._check_isolation()
        self.uid = self._lease_uid()
        # mount points of jobs of an earlier process (their mounts died with its namespaces)
        shutil.rmtree(self.root / "jobs", ignore_errors=True)
        reused = self._try_reuse()
        if not reused:
            self._fresh_tree(clone_from)
        self.adapter = get_adapter(
            self.base.adapter, self.tree, jobs=self.config.resolved_build_jobs()
        )
        self.judging = [s for s in JUDGING_STAGES if self.adapter.command(s, [], self.base.stages)]
        if not self.judging:
            self.adapter = None
            why = (
                "no dune-project and no --stage command"
                if not (self.tree / "dune-project").is_file()
                else "every stage command is empty"
            )
            raise NothingToJudgeError(
                f"nothing to judge: {why} for typecheck, build or test in {self.base.source}, "
                "so every diff would pass. Add a dune-project or give the commands "
                "(--stage build='make' --stage test='make check')."
            )
        if isinstance(self.adapter, DuneAdapter):
            self.adapter.stanzas = read_stanzas(self.tree)
        self.sandbox.check(self.tree, self.uid)
        results = self._run_green_stages()
        bad = next((r for r in results if r.status != "passed" and r.status != "skipped"), None)
        self.base_green = bad is None
        if bad is not None and self.base.require_green:
            raise BaseNotGreenError(
                f"Base {self.base.source}"
                + (f" at {self.base.rev}" if self.base.rev else "")
                + f" is not green: stage {bad.name!r} {bad.status} "
                f"(exit {bad.exit_code}). Output:\n{bad.output.strip()[-4000:]}\n"
                "Fix the base or pass the right stage commands (--stage NAME=CMD)."
            )
        test = next((r for r in results if r.name == "test"), None)
        if self._stanzas() is not None:
            self.base_tests = runners.summary(self.base_report or {}) if self.base_green else None
            if not self.base_green:
                self.base_report = None
        else:
            self.base_tests = (
                self.adapter.test_summary(test.output) if test and self.base_green else None
            )
        self.base_manifest = manifest(self.tree, self._hash_cache["tree"])
        self.base_hash = tree_hash(self.base_manifest)
        self.test_binds = test_binds(self.base_manifest, self.config.test_globs)
        if not reused:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            copy_tree(self.tree, self.base_dir)
        self._save_state()
        self.warm_s = time.monotonic() - start
        return self.info()

    def _check_isolation(self) -> None:
        """Untrusted code (the bwrap sandbox) is judged only on the overlay isolation."""
        why = overlay_unavailable()
        if self.isolation == "overlay" and why is not None:
            raise SandboxError(
                f"The CES cannot use its overlay isolation here: {why}. Run it as root on a "
                "kernel with overlayfs, or set [ces] sandbox = 'none' and isolation = 'reset' "
                "for trusted diffs only."
            )
        if self.isolation != "overlay" and self.sandbox.name != "none":
            reason = why or "[ces] isolation = 'reset' was asked for"
            raise SandboxError(
                f"Refusing to judge untrusted code without a throw-away layer per job ({reason}): "
                "a job could leave links, permissions or a poisoned _build for the next one. Run "
                "the CES as root with overlayfs (isolation = 'auto' or 'overlay'), or set [ces] "
                "sandbox = 'none' and isolation = 'reset' for trusted diffs only."
            )

    def _try_reuse(self) -> bool:
        state_file = self.root / "state.json"
        if not (state_file.is_file() and self.tree.is_dir() and self.base_dir.is_dir()):
            return False
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            return False
        if state.get("version") != STATE_VERSION or state.get("key") != self.base.key():
            return False
        want = manifest(self.base_dir)
        if tree_hash(want) != state.get("base_hash"):
            return False
        if tree_hash(manifest(self.tree)) != state["base_hash"]:
            restore(self.tree, self.base_dir, want)
            prepare_tree(self.tree, self.uid)
        if tree_hash(manifest(self.tree)) != state["base_hash"]:
            return False
        if state.get("uid") != self.uid:  # its old uid is held by a live worker now
            prepare_tree(self.tree, self.uid)  # the warm tree: no job ever wrote it
        return True

    def _fresh_tree(self, clone_from: Worker | None) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        (self.root / "state.json").unlink(missing_ok=True)
        if clone_from is not None:
            copy_tree(clone_from.tree, self.tree, with_build=True)
        elif self.pristine is not None:
            copy_tree(self.pristine, self.tree)
        else:
            spec = resolve(self.base)
            export(spec, self.tree)
        prepare_tree(self.tree, self.uid)

    def _run_green_stages(self) -> list[StageResult]:
        """typecheck, build, test on the unchanged tree, with the (longer) warm limits."""
        out = []
        for stage in STAGES[2:]:
            if stage == "test" and self._stanzas() is not None:
                res, _, self.base_report = self._run_tests(None, warm=True)
            else:
                res = self._stage_flags(stage, [], None, warm=True)[0]
            out.append(res)
            if res.status not in ("passed", "skipped"):
                break
        return out

    def _save_state(self) -> None:
        state = {
            "version": STATE_VERSION,
            "key": self.base.key(),
            "base": self.base.to_dict(),
            "base_hash": self.base_hash,
            "base_tests": self.base_tests,
            "base_report": runners.report_to_state(self.base_report),
            "uid": self.uid,
        }
        (self.root / "state.json").write_text(json.dumps(state, indent=1))

    # ----------------------------------------------------------------- stages
    def _stage_flags(
        self,
        stage: str,
        touched: list[str],
        deadline: float | None,
        *,
        warm: bool = False,
        cmd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> tuple[StageResult, list[str]]:
        assert self.adapter is not None
        if cmd is None:
            cmd = self.adapter.command(stage, touched, self.base.stages)
        if not cmd:
            return StageResult(stage, "skipped", 0.0, "", None), []
        limits = self.config.limits(stage)
        if warm:  # a cold build of a real repository takes far longer than a job's stage
            limits.wall_s = max(limits.wall_s, self.config.warm_timeout_s)
            limits.cpu_s = max(limits.cpu_s, int(self.config.warm_timeout_s))
        if deadline is not None:
            limits.wall_s = max(0.1, min(limits.wall_s, deadline - time.monotonic()))
        job = None if warm else self._job
        bounds = None
        if job is not None:
            readonly = {}
            if stage == "test" and self._test_run != "trust":
                # the base's test files, bound read-only from the warm tree (never from a path
                # the job wrote); in the run of the diff's own tests, the ones it edits are its
                # own (a build that rewrites them is caught by teststage.tampered)
                binds = self.test_binds
                if self._test_run == "diff":
                    binds = binds_without(binds, self._edited_tests, self.base_manifest)
                readonly = {rel: self.tree / rel for rel in binds}
            bounds = JobBounds(layer=job.layer, cgroup=job.cgroup, readonly=readonly)
        tree = job.tree if job is not None else self.tree
        log.info("%s %s: %s", self.id, stage, cmd)
        run = self.sandbox.run(
            cmd, tree=tree, limits=limits, uid=self.uid, env=env or None, bounds=bounds
        )
        if not run.started:
            self._sandbox_fault(stage, run)
        if run.infra is not None:
            raise InfrastructureError(f"Stage {stage!r} on worker {self.id}: {run.infra}.")
        res = self._stage_result(stage, run)
        res.command = cmd
        log.info(
            "%s %s: %s in %.2f s (exit %s)",
            self.id,
            stage,
            res.status,
            res.duration_s,
            res.exit_code,
        )
        return res, run.flags

    def _sandbox_fault(self, stage: str, run: RunResult) -> None:
        """The sandbox did not start. If it does not start on the warm tree either, the machine
        is at fault (:class:`InfrastructureError`); else the job left a tree it cannot enter,
        and the stage fails as the diff's."""
        probe = self.sandbox.run("true", tree=self.tree, limits=Limits(wall_s=30), uid=self.uid)
        if probe.exit_code != 0 or not probe.started:
            raise InfrastructureError(
                f"The sandbox failed to start for stage {stage!r} on worker {self.id}: "
                f"{run.output.strip()[:500]}"
            )
        run.exit_code = run.exit_code if run.exit_code not in (None, 0) else 1
        run.output = (
            f"[bactrian: the sandbox could not start on the tree the job left: "
            f"{run.output.strip()[:500]}]\n"
        )

    # ----------------------------------------------------------------- tests
    def job_tree(self) -> Path:
        """The tree the current job's stages run in, as the host sees it (where the runners'
        records and the test files are read, never following links): the job's overlay when
        one is mounted, else the warm tree."""
        return self._work_tree

    def _stanzas(self) -> Stanzas | None:
        return self.adapter.stanzas if isinstance(self.adapter, DuneAdapter) else None

    def _guard(self) -> teststage.Guard:
        adapter = self.adapter
        inside = SANDBOX_TREE if self.sandbox.name == "bwrap" else str(self.job_tree().resolve())
        suite_cmd = None
        if isinstance(adapter, DuneAdapter):
            suite_cmd = adapter.suite_command
        return teststage.Guard(self._stanzas(), self.base_report, inside, suite_cmd)

    def _run_tests(
        self, deadline: float | None, *, warm: bool = False
    ) -> tuple[StageResult, list[str], runners.Report]:
        """One run of the test command (plus the suites it left out), with the records."""
        assert self.adapter is not None
        cmd = self.adapter.command("test", [], self.base.stages)
        if not cmd:
            return StageResult("test", "skipped", 0.0, "", None), [], {}

        def run(command: str, env: dict[str, str]) -> tuple[StageResult, list[str]]:
            return self._stage_flags("test", [], deadline, warm=warm, cmd=command, env=env)

        return teststage.run_suites(self.job_tree(), cmd, run, self._guard(), self.uid)

    def _test_stage(
        self,
        touched: list[str],
        edits_tests: list[str],
        deadline: float | None,
        *,
        policy: str | None = None,
    ) -> teststage.TestOutcome:
        """The test stage under ``policy`` (default ``[ces] edits_tests_policy``; see
        :mod:`bactrian.ces.teststage`)."""
        policy = policy or self.config.edits_tests_policy
        guard = self._guard()
        base_tests = [
            p
            for p in self.base_manifest
            if is_test_path(p, self.config.test_globs) and self.base_manifest[p][0] in ("f", "x")
        ]
        if edits_tests and policy == "fail":
            msg = (
                f"The diff edits test files ({', '.join(edits_tests)}): the test stage "
                "cannot pass for a diff that changes its own tests (edits_tests_policy 'fail')."
            )
            return teststage.TestOutcome(StageResult("test", "failed", 0.0, msg, None))
        tree = self.job_tree()
        deleted = [p for p in edits_tests if p in base_tests and not (tree / p).is_file()]
        if edits_tests and policy == "both" and deleted:
            msg = (
                f"The diff deletes base test files ({', '.join(deleted)}): a diff may add and "
                "extend tests, not remove them."
            )
            return teststage.TestOutcome(StageResult("test", "failed", 0.0, msg, None))
        runs: list[str] = []  # "diff" / "base", in order
        if edits_tests and policy in ("both", "trust"):
            runs.append("diff")
        if not (edits_tests and policy == "trust"):
            runs.append("base")
        outcome = teststage.TestOutcome(StageResult("test", "passed", 0.0, "", 0))
        total_report: runners.Report = {}
        for source in runs:
            if source == "base" and edits_tests:
                self._pristine_tests(edits_tests)
            self._test_run = "trust" if policy == "trust" else source
            self._edited_tests = set(edits_tests)
            try:
                res, flags, report = self._run_tests(deadline)
            finally:
                self._test_run, self._edited_tests = "base", set()
            outcome.flags += [f for f in flags if f not in outcome.flags]
            if self._stanzas() is not None:
                teststage.check_guard(res, guard, report)
            elif res.status == "passed":
                self._check_test_count(res)
            must_match = [p for p in base_tests if source == "base" or p not in edits_tests]
            bad = teststage.tampered(tree, self.base_manifest, must_match)
            if bad:
                res.status = "failed"
                outcome.flags.append("tests-tampered")
                res.output += (
                    f"\n[bactrian: the base's test files changed while the tests were built or "
                    f"run: {', '.join(bad[:10])}]\n"
                )
            if len(runs) > 1:
                label = "the diff's tests" if source == "diff" else "the base's tests"
                res.output = f"[bactrian: {label}]\n" + res.output
            out = outcome.result
            out.output += ("\n" if out.output else "") + res.output
            out.duration_s = round(out.duration_s + res.duration_s, 4)
            out.status, out.exit_code = res.status, res.exit_code
            outcome.suites += teststage.suites_of(report, source)
            if source == runs[-1] or res.status != "passed":
                total_report = report
            if res.status != "passed":
                break
        outcome.result.command = (
            self.adapter.command("test", [], self.base.stages) if self.adapter else None
        )
        if self._stanzas() is not None:
            outcome.summary = runners.summary(total_report) if total_report else None
        else:
            outcome.summary = (
                self.adapter.test_summary(outcome.result.output) if self.adapter else None
            )
        return outcome

    @staticmethod
    def _stage_result(stage: str, run: RunResult) -> StageResult:
        if run.timed_out:
            status = "timeout"
        elif run.killed:
            status = "error"
        else:
            status = "passed" if run.exit_code == 0 else "failed"
        return StageResult(stage, status, round(run.duration_s, 4), run.output, run.exit_code)

    # ----------------------------------------------------------------- judging
    def judge(self, job: Job) -> Verdict:
        """Apply, run the stages, reset. Never leaves the tree dirty: on a failed reset the
        worker rebuilds itself before returning."""
        with self._lock:
            if self.adapter is None:
                self.warm()
            self.counters["jobs"] += 1
            if self.isolation == "overlay":
                try:
                    verdict = run_in_private_mount_ns(self._judge_layered, job)
                finally:
                    rebuilt = self._after_layered_job()
                if rebuilt:
                    verdict.flags.append("worker-rebuilt")
                return verdict
            try:
                verdict = self._judge(job)
            except BaseException:
                self._reset()
                raise
            if self._reset():
                verdict.flags.append("worker-rebuilt")
            return verdict

    def _judge_layered(self, job: Job) -> Verdict:
        """One job on its own overlay and memory group (runs in a private mount namespace).

        With ``[ces] fuse_stages`` (and no whole-job ``timeout_s``) typecheck and build first
        run as one dune invocation (:mod:`bactrian.ces.fused`); unless that passes cleanly the
        whole job is judged again, staged, on a fresh layer — exactly as an unfused job."""
        if self.config.fuse_stages and not job.timeout_s:
            try:
                return self._judge_on_layer(job, fuse=True)
            except _Unfused:
                self.counters["unfused"] += 1
        return self._judge_on_layer(job, fuse=False)

    def _judge_on_layer(self, job: Job, *, fuse: bool) -> Verdict:
        tag = f"{os.getpid()}-{job.id[:16]}-{uuid.uuid4().hex[:6]}"
        layer = JobLayer(self.tree, self.root / "jobs" / tag, self.config.max_disk_mb)
        cgroup = None
        try:
            try:
                layer.mount()
            except OSError as exc:
                raise InfrastructureError(
                    f"Worker {self.id} could not set up the job's layer under {layer.scratch}: "
                    f"{exc.strerror or exc} (is the host's disk or memory full?)."
                ) from exc
            limit = self.config.job_memory_mb * 1024 * 1024
            try:
                cgroup = MemoryCgroup.create(limit, self.id.replace("/", "_"))
            except OSError as exc:
                raise InfrastructureError(
                    f"Worker {self.id} could not create the job's memory cgroup: {exc}."
                ) from exc
            self._job = _JobContext(layer.merged, layer, cgroup)
            return self._judge(job, fuse=fuse)
        finally:
            self._job = None
            if cgroup is not None:
                cgroup.remove()
            layer.unmount()

    def _after_layered_job(self) -> bool:
        """The warm tree and its snapshot still hold the base (no job can write them: this is
        defence in depth); rebuild when not. Returns True when the worker rebuilt."""
        self.counters["resets"] += 1
        if self._base_intact():
            return False
        log.warning("worker %s: the warm tree or its snapshot changed; rebuilding", self.id)
        self.rebuild()
        return True

    def _base_intact(self) -> bool:
        try:
            tree_ok = tree_hash(manifest(self.tree, self._hash_cache["tree"])) == self.base_hash
            base_ok = tree_hash(manifest(self.base_dir, self._hash_cache["base"])) == self.base_hash
        except OSError:
            return False
        return tree_ok and base_ok

    def _judge(self, job: Job, *, fuse: bool = False) -> Verdict:
        assert self.adapter is not None
        deadline = time.monotonic() + job.timeout_s if job.timeout_s else None
        flags: list[str] = []
        apply_stage, touched, apply_info = self._apply(job, flags)
        stages = [apply_stage]
        diagnostics: list[Diagnostic] = []
        edits_tests = [p for p in touched if is_test_path(p, self.config.test_globs)]
        if edits_tests:
            flags.append("edits-tests")
        policy = job.edits_tests_policy or self.config.edits_tests_policy
        if apply_stage.status == "passed" and edits_tests and policy == "pristine":
            # before any of the job's code ran: nothing here was written by the sandbox
            self._pristine_tests(edits_tests)
        self._outcome = None
        if apply_stage.status == "passed":
            diagnostics = self._run_stages(
                stages, touched, edits_tests, deadline, flags, policy=policy, fuse=fuse
            )
        if "sandbox-kill" in flags:
            self.counters["sandbox_kills"] += 1
        furthest = None
        for s in stages:
            if s.status not in ("passed", "skipped"):
                break
            furthest = s.name
        guard_state, uncounted = self._guard().state()
        outcome = self._outcome
        test_report: dict[str, Any] = {
            "guard": guard_state,
            "uncounted": uncounted,
            "policy": self.config.edits_tests_policy,
            "suites": outcome.suites if outcome else [],
        }
        test_ran = outcome is not None and outcome.result.status == "passed"
        if guard_state == "off" and test_ran:
            flags.append("test-guard-off")
            stages[-1].output += "\n" + teststage.uncounted_weight_note(uncounted) + "\n"
        ok = is_ok(stages, self.judging, guard_off=guard_state == "off")
        return Verdict(
            job_id=job.id,
            ok=ok,
            furthest=furthest,
            stages=stages,
            diagnostics=diagnostics,
            reward=stage_reward(stages, ok, guard_off=guard_state == "off", config=self.config),
            tests=outcome.summary if outcome else None,
            worker=self.id,
            flags=flags,
            apply=apply_info,
            test_report=test_report,
        )

    def _apply(
        self, job: Job, flags: list[str]
    ) -> tuple[StageResult, list[str], dict[str, Any] | None]:
        """The apply stage: (its result, the paths the diff names, ApplyResult dict)."""
        if not job.diff.strip():
            flags.append("empty-diff")
            msg = "The diff is empty: nothing to judge."
            return StageResult("apply", "failed", 0.0, msg, None), [], None
        t0 = time.monotonic()
        work = self._work_tree
        applied = apply_diff(
            work, job.diff, lenient=job.allow_lenient, timeout_s=self.config.apply_timeout_s
        )
        touched = [p for p in applied.touched if p]
        if applied.lenient:
            flags.append("lenient-apply")
        if self.uid is not None and os.geteuid() == 0:
            for rel in touched:  # no job code has run yet; links are never followed anyway
                chown_nofollow(work, rel, self.uid)
        status = "passed" if applied.ok else "timeout" if applied.timed_out else "failed"
        if applied.timed_out:
            flags.append("timeout")
        out = applied.message[: self.config.output_bytes]
        res = StageResult("apply", status, round(time.monotonic() - t0, 4), out, None)
        return res, touched, applied.result

    def _run_stages(
        self,
        stages: list[StageResult],
        touched: list[str],
        edits_tests: list[str],
        deadline: float | None,
        flags: list[str],
        *,
        policy: str | None = None,
        fuse: bool = False,
    ) -> list[Diagnostic]:
        """parse → typecheck → build → test into ``stages``, stopping at the first failure;
        returns the failing stage's diagnostics. With ``fuse``, typecheck + build run as one
        dune invocation, and :class:`_Unfused` is raised unless it passes cleanly."""
        assert self.adapter is not None
        policy = policy or self.config.edits_tests_policy
        present = [p for p in touched if (self._work_tree / p).is_file()]
        fused_ok = False
        for stage in STAGES[1:]:
            if stage == "typecheck" and fuse and deadline is None:
                fused = self._fused_typecheck_build(deadline)
                if fused is not None:
                    stages.extend(fused[:2])
                    flags.extend(f for f in fused[2] if f not in flags)
                    fused_ok = True
                    continue
            if stage == "build" and fused_ok:
                continue
            if stage == "test":
                self._outcome = outcome = self._test_stage(
                    touched, edits_tests, deadline, policy=policy
                )
                res, run_flags = outcome.result, outcome.flags
            else:
                res, run_flags = self._stage_flags(stage, present, deadline)
            flags.extend(f for f in run_flags if f not in flags)
            if (
                stage == "parse"
                and isinstance(self.adapter, DuneAdapter)
                and "parse" not in self.base.stages
                and self.adapter.parse_plan(present)[1]
            ):
                flags.append("parse-deferred")
            stages.append(res)
            if res.status in ("passed", "skipped"):
                continue
            diagnostics = self.adapter.diagnostics(res.output)
            if stage == "typecheck" and any(_is_syntax(d) for d in diagnostics):
                # a syntax error the cheap parse step did not see: still a parse failure
                took = stages[-2].duration_s + res.duration_s
                stages[-2:] = [StageResult("parse", "failed", took, res.output, res.exit_code)]
            return diagnostics
        return []

    @property
    def _work_tree(self) -> Path:
        """The tree a job writes: its overlay when one is mounted, else the warm tree."""
        return self._job.tree if self._job is not None else self.tree

    def _fused_typecheck_build(
        self, deadline: float | None
    ) -> tuple[StageResult, StageResult, list[str]] | None:
        """typecheck + build in one dune run (:mod:`bactrian.ces.fused`), in the job's layer
        like every stage: both results when it passed cleanly (exit 0, no output, no flag:
        then each stage alone passes with no output too); None when the stages cannot be
        fused here (nothing ran); :class:`_Unfused` when it ran and did not pass cleanly — the
        job is then judged again, staged, on a fresh layer, so what the fused run's rules
        wrote never reaches the staged verdict."""
        assert self.adapter is not None
        cmd = fused_command(self.adapter, self.base.stages)
        if cmd is None:
            return None
        res, run_flags = self._stage_flags("build", [], deadline, cmd=cmd)
        if res.status != "passed" or res.output.strip() or run_flags:
            raise _Unfused(f"fused run {res.status}")
        self.counters["fused"] += 1
        check = StageResult("typecheck", "passed", 0.0, "", 0, cmd)
        return check, res, run_flags

    def _pristine_tests(self, paths: list[str]) -> None:
        """Put the base's version of each test path back (delete the ones the diff added).

        Runs right after apply, before any sandboxed code; still, no symlink is ever followed
        (the diff itself may have made one)."""
        for rel in paths:
            target = self._safe_parent(rel) / Path(rel).name
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            if rel in self.base_manifest and self.base_manifest[rel][0] in ("f", "x"):
                shutil.copy2(self.base_dir / rel, target, follow_symlinks=False)
                prepare_tree(target, self.uid)

    def _safe_parent(self, rel: str) -> Path:
        """``tree/rel``'s parent with every component a real directory (links replaced)."""
        cur = self._work_tree
        for part in Path(rel).parts[:-1]:
            cur = cur / part
            if cur.is_symlink() or (cur.exists() and not cur.is_dir()):
                cur.unlink()
            if not cur.exists():
                cur.mkdir()
                prepare_tree(cur, self.uid)
        return cur

    def _check_test_count(self, res: StageResult) -> None:
        if not self.base_tests or not self.base_tests.get("total"):
            return
        assert self.adapter is not None
        got = self.adapter.test_summary(res.output)
        want = self.base_tests["total"]
        if got is None or got["total"] < want:
            res.status = "failed"
            res.output += (
                f"\n[bactrian: the tests reported {got['total'] if got else 'no'} results where the "
                f"base reports {want}: the test runner exited before running every test]\n"
            )

    # ----------------------------------------------------------------- reset
    def _reset(self) -> bool:
        """Restore the sources to the base state and verify; rebuild if that fails.
        Returns True when the worker had to rebuild."""
        self.counters["resets"] += 1
        try:
            changed = restore(self.tree, self.base_dir, self.base_manifest)
            for rel in changed:
                p = self.tree / rel
                if p.exists() or p.is_symlink():
                    prepare_tree(p, self.uid)
            if tree_hash(manifest(self.tree)) == self.base_hash:
                return False
            log.warning("worker %s: reset did not verify; rebuilding", self.id)
        except OSError as exc:
            log.warning("worker %s: reset failed (%s); rebuilding", self.id, exc)
        self.rebuild()
        return True

    def rebuild(self) -> None:
        """A fresh tree from the base snapshot (or, if that is damaged too, from the pristine
        export), built green from scratch and verified against the base hash."""
        self.counters["rebuilds"] += 1
        snapshot_ok = (
            self.base_dir.is_dir() and tree_hash(manifest(self.base_dir)) == self.base_hash
        )
        shutil.rmtree(self.tree, ignore_errors=True)
        if snapshot_ok:
            copy_tree(self.base_dir, self.tree)
        elif self.pristine is not None:
            copy_tree(self.pristine, self.tree)
        else:
            export(resolve(self.base), self.tree)
        prepare_tree(self.tree, self.uid)
        results = self._run_green_stages()
        green = all(r.status in ("passed", "skipped") for r in results)
        if green != self.base_green:
            raise CESError(
                f"Worker {self.id} could not rebuild its base to its warmed state "
                f"({'green' if self.base_green else 'red'})."
            )
        if tree_hash(manifest(self.tree)) != self.base_hash:
            raise CESError(f"Worker {self.id}: rebuilt tree does not match the base hash.")
        if not snapshot_ok:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            copy_tree(self.tree, self.base_dir)

    def verify(self) -> bool:
        """True when the tree's sources equal the base state."""
        return tree_hash(manifest(self.tree)) == self.base_hash

    def info(self) -> dict[str, Any]:
        stanzas = self._stanzas()
        return {
            "id": self.id,
            "root": str(self.root),
            "base_hash": self.base_hash,
            "warm_s": round(self.warm_s, 3),
            "base_tests": self.base_tests,
            "isolation": self.isolation,
            "judging": list(self.judging),
            "suites": [s.to_dict() for s in stanzas.suites] if stanzas else [],
            **{k: int(v) for k, v in self.counters.items()},
        }

    def close(self) -> None:
        """Release the worker and its uid; its tree stays on disk so a later process can
        reuse it (a later :meth:`warm` leases a uid again)."""
        self.adapter = None
        if self._uid_lease is not None:
            self._uid_lease.release()

    def destroy(self) -> None:
        """Delete the worker's directory."""
        self.close()
        shutil.rmtree(self.root, ignore_errors=True)
