"""CES fixtures: one warmed local pool on the tiny OCaml project, shared by the module's tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, Job, Verdict
from bactrian.ces.local import LocalBackend

from .project import write_project


def small_config(work_dir: Path, **kw: object) -> CESConfig:
    """Small limits so adversarial jobs end quickly."""
    values: dict[str, object] = {
        "workers": 2,
        "work_dir": work_dir,
        "timeout_s": 120.0,
        "stage_timeouts": {"test": 10.0},
        "cpu_s": 60,
        "memory_mb": 2048,
        "max_procs": 64,
        "output_bytes": 16 * 1024,
        "max_file_mb": 32,
    }
    values.update(kw)
    return CESConfig(**values)  # type: ignore[arg-type]


class Pool:
    """A warm backend on one base, with a helper to judge diffs."""

    def __init__(self, backend: LocalBackend, base: BaseSpec, project: Path) -> None:
        self.backend = backend
        self.base = base
        self.project = project

    def judge(self, *diffs: str, lenient: bool = False) -> list[Verdict]:
        return self.backend.evaluate([Job(self.base, d, allow_lenient=lenient) for d in diffs])

    def uids(self) -> set[int]:
        return {w.uid for p in self.backend._pools.values() for w in p.workers}

    def one(self, diff: str, **kw: bool) -> Verdict:
        return self.judge(diff, **kw)[0]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    root = tmp_path_factory.mktemp("ces-pool")
    project = write_project(root / "project")
    backend = LocalBackend(small_config(root / "work"))
    base = BaseSpec(str(project))
    backend.warm(base, 2)
    yield Pool(backend, base, project)
    backend.close()


def sandbox_processes(uids: set[int]) -> list[str]:
    """Processes running as one of the sandbox ``uids``, as ``pid uid cmd`` lines."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,uid=,args="], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) in uids:
            rows.append(line.strip())
    return rows


needs_root = pytest.mark.needs_root  # fails, never skips, when not root (tests/conftest.py)
