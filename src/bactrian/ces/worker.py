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

Tests protection (``edits_tests_policy = "fail"``, the default): a diff that adds, edits or
deletes a test file is flagged ``edits-tests`` and its ``test`` stage fails without running. A
test runner that reports fewer tests than the base did (e.g. exits 0 before running them)
fails the ``test`` stage too. With ``edits_tests_policy = "pristine"`` the test stage instead
runs the base's own test files: the diff's test changes are undone before ``test`` runs (the
verdict is still flagged). ``"trust"`` runs the diff's tests as written (still flagged): it is
for human-written diffs, such as checking that mined gold diffs turn their base green.
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

from bactrian.ces.adapters import Adapter, get_adapter
from bactrian.ces.apply_stage import apply_diff
from bactrian.ces.config import CESConfig, Limits
from bactrian.ces.contract import STAGES, BaseSpec, Job, StageResult, Verdict
from bactrian.ces.isolation import (
    InfrastructureError,
    JobLayer,
    MemoryCgroup,
    overlay_unavailable,
    run_in_private_mount_ns,
)
from bactrian.ces.sandbox import (
    JobBounds,
    RunResult,
    Sandbox,
    get_sandbox,
    prepare_tree,
    sandbox_uid,
)
from bactrian.ces.tree import (
    Entry,
    StatCache,
    chown_nofollow,
    copy_tree,
    manifest,
    restore,
    tree_hash,
)
from bactrian.errors import BaseNotGreenError, CESError, SandboxError
from bactrian.types import Diagnostic

log = logging.getLogger(__name__)

STATE_VERSION = 1


def compute_reward(furthest: str | None, ok: bool, config: CESConfig) -> float:
    """Graded: the weight of the furthest stage passed (all stages → the ``test`` weight);
    binary: 1.0 only when every stage passed."""
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
        self.sandbox = sandbox or get_sandbox(config.sandbox)
        self.tree = self.root / "tree"
        self.base_dir = self.root / "base"
        self.uid = sandbox_uid(str(self.root))
        self.adapter: Adapter | None = None
        self.base_manifest: dict[str, Entry] = {}
        self.base_hash = ""
        self.base_tests: dict[str, int] | None = None
        self.base_green = True
        self.isolation = config.resolved_isolation()
        self.test_binds: list[str] = []
        self._job: _JobContext | None = None
        self._hash_cache: dict[str, StatCache] = {"tree": {}, "base": {}}
        self.warm_s = 0.0
        self.counters: dict[str, float] = {
            "jobs": 0,
            "resets": 0,
            "rebuilds": 0,
            "sandbox_kills": 0,
        }
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- warming
    def warm(self, clone_from: Worker | None = None) -> dict[str, Any]:
        """Make ``tree`` green. Reuses a tree left by an earlier process when its hash still
        matches; copies a warm sibling's tree (with ``_build``) when given; else copies the
        pristine export and builds from scratch."""
        start = time.monotonic()
        self._check_isolation()
        # mount points of jobs of an earlier process (their mounts died with its namespaces)
        shutil.rmtree(self.root / "jobs", ignore_errors=True)
        reused = self._try_reuse()
        if not reused:
            self._fresh_tree(clone_from)
        self.adapter = get_adapter(
            self.base.adapter, self.tree, jobs=self.config.resolved_build_jobs()
        )
        check = getattr(self.sandbox, "check", None)
        if check is not None:
            check(self.tree, self.uid)
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
        return tree_hash(manifest(self.tree)) == state["base_hash"]

    def _fresh_tree(self, clone_from: Worker | None) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        (self.root / "state.json").unlink(missing_ok=True)
        if clone_from is not None:
            copy_tree(clone_from.tree, self.tree, with_build=True)
        elif self.pristine is not None:
            copy_tree(self.pristine, self.tree)
        else:
            from bactrian.ces.tree import export, resolve

            spec = resolve(self.base)
            export(spec, self.tree)
        prepare_tree(self.tree, self.uid)

    def _run_green_stages(self) -> list[StageResult]:
        """typecheck, build, test on the unchanged tree, with the (longer) warm limits."""
        out = []
        for stage in STAGES[2:]:
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
            "uid": self.uid,
        }
        (self.root / "state.json").write_text(json.dumps(state, indent=1))

    # ----------------------------------------------------------------- stages
    def _stage_flags(
        self, stage: str, touched: list[str], deadline: float | None, *, warm: bool = False
    ) -> tuple[StageResult, list[str]]:
        assert self.adapter is not None
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
            if stage == "test" and self.config.edits_tests_policy != "trust":
                readonly = {rel: self.tree / rel for rel in self.test_binds}
            bounds = JobBounds(layer=job.layer, cgroup=job.cgroup, readonly=readonly)
        tree = job.tree if job is not None else self.tree
        run = self.sandbox.run(cmd, tree=tree, limits=limits, uid=self.uid, bounds=bounds)
        if not run.started:
            self._sandbox_fault(stage, run)
        if run.infra is not None:
            raise InfrastructureError(f"Stage {stage!r} on worker {self.id}: {run.infra}.")
        return self._stage_result(stage, run), run.flags

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
        """One job on its own overlay and memory group (runs in a private mount namespace)."""
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
            return self._judge(job)
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

    def _judge(self, job: Job) -> Verdict:
        assert self.adapter is not None
        self.counters["jobs"] += 1
        deadline = time.monotonic() + job.timeout_s if job.timeout_s else None
        flags: list[str] = []
        apply_stage, touched, apply_info = self._apply(job, flags)
        stages = [apply_stage]
        diagnostics: list[Diagnostic] = []
        edits_tests = [p for p in touched if is_test_path(p, self.config.test_globs)]
        if edits_tests:
            flags.append("edits-tests")
        pristine = self.config.edits_tests_policy == "pristine"
        if apply_stage.status == "passed" and edits_tests and pristine:
            # before any of the job's code ran: nothing here was written by the sandbox
            self._pristine_tests(edits_tests)
        if apply_stage.status == "passed":
            diagnostics = self._run_stages(stages, touched, edits_tests, deadline, flags)
        if "sandbox-kill" in flags:
            self.counters["sandbox_kills"] += 1
        furthest = None
        for s in stages:
            if s.status not in ("passed", "skipped"):
                break
            furthest = s.name
        ok = len(stages) == len(STAGES) and all(s.status in ("passed", "skipped") for s in stages)
        test_stage = next((s for s in stages if s.name == "test"), None)
        tests = self.adapter.test_summary(test_stage.output) if test_stage else None
        return Verdict(
            job_id=job.id,
            ok=ok,
            furthest=furthest,
            stages=stages,
            diagnostics=diagnostics,
            reward=compute_reward(furthest, ok, self.config),
            tests=tests,
            worker=self.id,
            flags=flags,
            apply=apply_info,
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
        applied = apply_diff(work, job.diff, lenient=job.allow_lenient)
        touched = [p for p in applied.touched if p]
        if applied.lenient:
            flags.append("lenient-apply")
        if self.uid is not None and os.geteuid() == 0:
            for rel in touched:  # no job code has run yet; links are never followed anyway
                chown_nofollow(work, rel, self.uid)
        status = "passed" if applied.ok else "failed"
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
    ) -> list[Diagnostic]:
        """parse → typecheck → build → test into ``stages``, stopping at the first failure;
        returns the failing stage's diagnostics."""
        assert self.adapter is not None
        present = [p for p in touched if (self._work_tree / p).is_file()]
        for stage in STAGES[1:]:
            if stage == "test" and edits_tests and self.config.edits_tests_policy == "fail":
                msg = (
                    f"The diff edits test files ({', '.join(edits_tests)}): the test stage "
                    "cannot pass for a diff that changes its own tests."
                )
                stages.append(StageResult("test", "failed", 0.0, msg, None))
                return []
            res, run_flags = self._stage_flags(stage, present, deadline)
            flags.extend(f for f in run_flags if f not in flags)
            if res.status == "passed" and stage == "test":
                self._check_test_count(res)
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
            from bactrian.ces.tree import export, resolve

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
        return {
            "id": self.id,
            "root": str(self.root),
            "base_hash": self.base_hash,
            "warm_s": round(self.warm_s, 3),
            "base_tests": self.base_tests,
            "isolation": self.isolation,
            **{k: int(v) for k, v in self.counters.items()},
        }

    def close(self) -> None:
        """Release the worker; its tree stays on disk so a later process can reuse it."""
        self.adapter = None

    def destroy(self) -> None:
        """Delete the worker's directory."""
        self.close()
        shutil.rmtree(self.root, ignore_errors=True)
