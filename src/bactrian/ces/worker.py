"""One CES worker: its own copy of a base tree, built green, judging one job at a time.

Layout under ``root``::

    root/tree/    the working tree (sources + ``_build``); bound read-write into the sandbox
    root/base/    the tree's source state right after warming (what every reset restores)
    root/state.json  base tree hash, base test summary, uid — lets a later process reuse it

Job flow: apply → parse → typecheck → build → test, stop at the first failure, then reset the
tree's sources to ``base/`` and verify by tree hash; a failed verification rebuilds the worker.
``_build`` is kept between jobs on purpose: dune recomputes from the restored sources (it
compares file digests, not only mtimes), so the next job costs an incremental build.

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
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from bactrian.ces.adapters import Adapter, get_adapter
from bactrian.ces.apply_stage import apply_diff
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import STAGES, BaseSpec, Job, StageResult, Verdict
from bactrian.ces.fused import fused_command
from bactrian.ces.sandbox import RunResult, Sandbox, get_sandbox, prepare_tree, sandbox_uid
from bactrian.ces.tree import Entry, copy_tree, manifest, restore, tree_hash
from bactrian.errors import BaseNotGreenError, CESError
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
        self.base_manifest = manifest(self.tree)
        self.base_hash = tree_hash(self.base_manifest)
        if not reused:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            copy_tree(self.tree, self.base_dir)
        self._save_state()
        self.warm_s = time.monotonic() - start
        return self.info()

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
        log.info("%s %s: %s", self.id, stage, cmd)
        run = self.sandbox.run(cmd, tree=self.tree, limits=limits, uid=self.uid)
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
            try:
                verdict = self._judge(job)
            except BaseException:
                self._reset()
                raise
            if self._reset():
                verdict.flags.append("worker-rebuilt")
            return verdict

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
        if apply_stage.status == "passed":
            policy = job.edits_tests_policy or self.config.edits_tests_policy
            diagnostics = self._run_stages(
                stages, touched, edits_tests, deadline, flags, policy=policy
            )
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
        applied = apply_diff(
            self.tree, job.diff, lenient=job.allow_lenient, timeout_s=self.config.apply_timeout_s
        )
        touched = [p for p in applied.touched if p]
        if applied.lenient:
            flags.append("lenient-apply")
        for rel in touched:
            p = self.tree / rel
            if p.exists() or p.is_symlink():
                prepare_tree(p, self.uid)
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
    ) -> list[Diagnostic]:
        """parse → typecheck → build → test into ``stages``, stopping at the first failure;
        returns the failing stage's diagnostics."""
        assert self.adapter is not None
        policy = policy or self.config.edits_tests_policy
        present = [p for p in touched if (self.tree / p).is_file()]
        fused_ok = False
        for stage in STAGES[1:]:
            # fused only without a job deadline: a fused run that times out would leave the
            # stages run one by one no time of their own, and the verdict could not say which
            # stage ran out
            if stage == "typecheck" and self.config.fuse_stages and deadline is None:
                fused = self._fused_typecheck_build(deadline)
                if fused is not None:
                    stages.extend(fused[:2])
                    flags.extend(f for f in fused[2] if f not in flags)
                    fused_ok = True
                    continue
            if stage == "build" and fused_ok:
                continue
            if stage == "test" and edits_tests:
                if policy == "fail":
                    msg = (
                        f"The diff edits test files ({', '.join(edits_tests)}): the test stage "
                        "cannot pass for a diff that changes its own tests."
                    )
                    stages.append(StageResult("test", "failed", 0.0, msg, None))
                    return []
                if policy == "pristine":
                    self._pristine_tests(edits_tests)
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

    def _fused_typecheck_build(
        self, deadline: float | None
    ) -> tuple[StageResult, StageResult, list[str]] | None:
        """typecheck + build in one dune run (:mod:`bactrian.ces.fused`): both results when
        it passed, None when it could not be used or did not pass (then the stages run one by
        one, and only their results count)."""
        assert self.adapter is not None
        cmd = fused_command(self.adapter, self.base.stages)
        if cmd is None:
            return None
        limits = self.config.limits("build")
        limits.wall_s += self.config.limits("typecheck").wall_s
        if deadline is not None:
            limits.wall_s = max(0.1, min(limits.wall_s, deadline - time.monotonic()))
        log.info("%s typecheck+build: %s", self.id, cmd)
        run = self.sandbox.run(cmd, tree=self.tree, limits=limits, uid=self.uid)
        res = self._stage_result("build", run)
        log.info("%s typecheck+build: %s in %.2f s", self.id, res.status, res.duration_s)
        if res.status != "passed":
            return None
        res.command = cmd
        check = StageResult("typecheck", "passed", 0.0, "", 0, cmd)
        return check, res, run.flags

    def _pristine_tests(self, paths: list[str]) -> None:
        """Put the base's version of each test path back (delete the ones the diff added).

        The build ran sandboxed code that may have turned a directory of the tree into a
        symlink to a host path; this runs as the host user, so no symlink is ever followed."""
        for rel in paths:
            target = self._safe_parent(rel) / Path(rel).name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            if rel in self.base_manifest and self.base_manifest[rel][0] in ("f", "x"):
                shutil.copy2(self.base_dir / rel, target, follow_symlinks=False)
                prepare_tree(target, self.uid)

    def _safe_parent(self, rel: str) -> Path:
        """``tree/rel``'s parent with every component a real directory (links replaced)."""
        cur = self.tree
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
            **{k: int(v) for k, v in self.counters.items()},
        }

    def close(self) -> None:
        """Release the worker; its tree stays on disk so a later process can reuse it."""
        self.adapter = None

    def destroy(self) -> None:
        """Delete the worker's directory."""
        self.close()
        shutil.rmtree(self.root, ignore_errors=True)
