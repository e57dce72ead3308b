"""CES settings: section ``[ces]`` of the config file, ``BACTRIAN_CES_*`` env variables."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.ces.isolation import overlay_unavailable
from bactrian.config import data_dir, load_section
from bactrian.errors import ConfigError

DEFAULT_REWARD_WEIGHTS: dict[str, float] = {
    "apply": 0.1,
    "parse": 0.2,
    "typecheck": 0.5,
    "build": 0.7,
    "test": 1.0,
}

DEFAULT_TEST_GLOBS: tuple[str, ...] = (
    "test/**",
    "tests/**",
    "**/test/**",
    "**/tests/**",
    "**/*_test.ml",
    "**/*_test.mli",
    "**/test_*.ml",
)


EDITS_TESTS_POLICIES: tuple[str, ...] = ("both", "pristine", "trust", "fail")
"""The test-edit policies (see :mod:`bactrian.ces.teststage`; ``[ces] edits_tests_policy``, ``--edits-tests-policy``, the HTTP
option ``edits_tests_policy``): what the ``test`` stage does with a diff that touches tests.
``trust`` is for human-written diffs only and is refused over HTTP unless the service allows
it (``bactrian ces serve --allow-trust``)."""


@dataclass
class Limits:
    """Resource limits of every sandboxed stage command."""

    cpu_s: int = 120  # RLIMIT_CPU per process
    wall_s: float = 120.0  # wall clock per stage (overridden by per-stage timeouts)
    memory_mb: int = 4096  # RLIMIT_AS per process
    max_procs: int = 256  # RLIMIT_NPROC for the sandbox's (mapped) user
    output_bytes: int = 64 * 1024  # kept per stage; the rest is dropped (flag output-truncated)
    max_file_mb: int = 512  # RLIMIT_FSIZE: no single file larger than this
    max_disk_mb: int = 2048  # a job's own disk: the size of its layer's tmpfs
    job_memory_mb: int = 6144  # a job's total memory (every process + its layer): a cgroup


@dataclass
class CESConfig:
    workers: int = 0  # 0 = number of CPU cores
    max_bases: int = 4  # bases kept warm; least recently used evicted
    build_jobs: int = 0  # the build tool's -j per worker; 0 = cores // workers (at least 1)
    work_dir: Path | None = None  # default data_dir()/ces
    sandbox: str = "bwrap"  # "bwrap" | "none"
    adapter: str = "auto"  # default adapter for bases that do not name one
    timeout_s: float = 120.0  # default wall-clock limit per stage
    apply_timeout_s: float = 20.0  # the apply stage (in process): time to place the hunks
    # typecheck + build as one dune run (ces/fused.py); a job whose fused run does not pass
    # cleanly is judged again, staged, on a fresh layer, so verdicts are the staged ones
    fuse_stages: bool = True
    stage_timeouts: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    warm_timeout_s: float = 1800.0  # per stage while warming (a cold build of the base)
    cpu_s: int = 120
    memory_mb: int = 4096
    max_procs: int = 256
    output_bytes: int = 64 * 1024
    max_file_mb: int = 512
    max_disk_mb: int = 2048  # per job: the size of its throw-away layer (a tmpfs)
    # per job, all processes together plus the pages of its layer (a memory cgroup); where
    # the machine has no memory cgroup, memory_mb x max_procs bounds it instead
    job_memory_mb: int = 6144
    # "auto": "overlay" where the CES runs as root with overlayfs, else "reset". "overlay":
    # every job on a throw-away overlay of the warm tree (required for the bwrap sandbox, i.e.
    # untrusted diffs). "reset": jobs write the warm tree, which is restored and verified
    # after each job — for trusted diffs only (sandbox = "none")
    isolation: str = "auto"
    reward_mode: str = "graded"  # "graded" | "binary"
    reward_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REWARD_WEIGHTS))
    test_globs: list[str] = field(default_factory=lambda: list(DEFAULT_TEST_GLOBS))
    # what the test stage runs for a diff that touches test files: "both" (default): the
    # diff's tests as written AND the base's test files unmodified, both against the diff's
    # code (deleting a base test fails); "pristine": only the base's test files; "trust": only
    # the diff's tests — for human-written diffs (checking mined gold diffs), never for model
    # output; "fail": the test stage fails without running
    edits_tests_policy: str = "both"
    # the test stage's reward when the base has suites whose runner cannot be counted (plain
    # `(test)` executables, inline tests): the guard is off there and the verdict says so;
    # the default pays no more than `build`
    uncounted_test_weight: float = 0.7
    # a running `bactrian ces serve` ("http://127.0.0.1:8765"): when set, `ces eval`, the
    # reward function and `evaluate()` judge through it (backend "http") instead of warming
    # workers in this process; its token is read from the environment variable `token_env`
    url: str = ""
    token_env: str = ""
    http_timeout_s: float = 30.0  # per HTTP request (warming waits up to warm_timeout_s)
    # where workers lease their sandbox uids (ces/uids.py); None: /run/bactrian/ces-uids as
    # root, else <data dir>/ces-uids. Machine-wide, so no two live pools share a uid
    uid_dir: Path | None = None

    def __post_init__(self) -> None:
        choices = {
            "reward_mode": ("graded", "binary"),
            "edits_tests_policy": EDITS_TESTS_POLICIES,
            "adapter": ("auto", "dune", "generic"),
            "isolation": ("auto", "overlay", "reset"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"[ces] {name} = {getattr(self, name)!r} is not valid: use one of "
                    f"{', '.join(repr(a) for a in allowed)}."
                )
        unknown = sorted(set(self.reward_weights) - set(DEFAULT_REWARD_WEIGHTS))
        if unknown:
            raise ConfigError(
                f"[ces] reward_weights names unknown stage(s) {', '.join(unknown)}: the stages "
                f"are {', '.join(DEFAULT_REWARD_WEIGHTS)}."
            )

    @classmethod
    def load(cls, **overrides: Any) -> CESConfig:
        return load_section(cls, "ces", overrides=overrides)

    def resolved_workers(self) -> int:
        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)

    def resolved_build_jobs(self) -> int:
        return self.build_jobs_for(self.resolved_workers())

    def build_jobs_for(self, pool_size: int) -> int:
        """dune's ``-j`` for each worker of a pool of ``pool_size`` workers on this machine:
        ``build_jobs`` when set, else the cores shared out (at least 1)."""
        if self.build_jobs > 0:
            return self.build_jobs
        return max(1, (os.cpu_count() or 1) // max(1, pool_size))

    def for_pool(self, pool_size: int) -> CESConfig:
        """This config with ``build_jobs`` fixed for a pool of ``pool_size`` workers (what
        every backend hands its workers, whatever ``workers`` says)."""
        return dataclasses.replace(self, build_jobs=self.build_jobs_for(pool_size))

    def resolved_work_dir(self) -> Path:
        return Path(self.work_dir) if self.work_dir else data_dir() / "ces"

    def limits(self, stage: str | None = None) -> Limits:
        wall = self.stage_timeouts.get(stage, self.timeout_s) if stage else self.timeout_s
        return Limits(
            cpu_s=self.cpu_s,
            wall_s=float(wall),
            memory_mb=self.memory_mb,
            max_procs=self.max_procs,
            output_bytes=self.output_bytes,
            max_file_mb=self.max_file_mb,
            max_disk_mb=self.max_disk_mb,
            job_memory_mb=self.job_memory_mb,
        )

    def resolved_isolation(self) -> str:
        if self.isolation != "auto":
            return self.isolation

        return "overlay" if overlay_unavailable() is None else "reset"
