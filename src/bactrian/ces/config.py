"""CES settings: section ``[ces]`` of the config file, ``BACTRIAN_CES_*`` env variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.config import data_dir, load_section
from bactrian.errors import ConfigError

DEFAULT_REWARD_WEIGHTS: dict[str, float] = {
    "apply": 0.1,
    "parse": 0.2,
    "typecheck": 0.5,
    "build": 0.7,
    "test": 1.0,
}

EDITS_TESTS_POLICIES: tuple[str, ...] = ("both", "pristine", "trust", "fail")
"""Named policies for a diff that touches test files (see bactrian.ces.teststage)."""

DEFAULT_TEST_GLOBS: tuple[str, ...] = (
    "test/**",
    "tests/**",
    "**/test/**",
    "**/tests/**",
    "**/*_test.ml",
    "**/*_test.mli",
    "**/test_*.ml",
)


@dataclass
class Limits:
    """Resource limits of every sandboxed stage command."""

    cpu_s: int = 120  # RLIMIT_CPU per process
    wall_s: float = 120.0  # wall clock per stage (overridden by per-stage timeouts)
    memory_mb: int = 4096  # RLIMIT_AS per process
    max_procs: int = 256  # RLIMIT_NPROC for the sandbox's (mapped) user
    output_bytes: int = 64 * 1024  # kept per stage; the rest is dropped (flag output-truncated)
    max_file_mb: int = 512  # RLIMIT_FSIZE: no single file larger than this
    max_disk_mb: int = 2048  # kill a stage whose writes shrink the tree's file system this much


@dataclass
class CESConfig:
    workers: int = 0  # 0 = number of CPU cores
    max_bases: int = 4  # bases kept warm; least recently used evicted
    build_jobs: int = 0  # the build tool's -j per worker; 0 = cores // workers (at least 1)
    work_dir: Path | None = None  # default data_dir()/ces
    sandbox: str = "bwrap"  # "bwrap" | "none"
    adapter: str = "auto"  # default adapter for bases that do not name one
    timeout_s: float = 120.0  # default wall-clock limit per stage
    stage_timeouts: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    warm_timeout_s: float = 1800.0  # per stage while warming (a cold build of the base)
    cpu_s: int = 120
    memory_mb: int = 4096
    max_procs: int = 256
    output_bytes: int = 64 * 1024
    max_file_mb: int = 512
    max_disk_mb: int = 2048
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

    def __post_init__(self) -> None:
        choices = {
            "reward_mode": ("graded", "binary"),
            "edits_tests_policy": EDITS_TESTS_POLICIES,
            "adapter": ("auto", "dune", "generic"),
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
        if self.build_jobs > 0:
            return self.build_jobs
        return max(1, (os.cpu_count() or 1) // self.resolved_workers())

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
        )
