"""Each worker's dune gets cores ÷ workers jobs, so two workers on two cores do not fight."""

from __future__ import annotations

import os
from pathlib import Path

from bactrian.ces.adapters import get_adapter
from bactrian.ces.config import CESConfig


def test_build_jobs_split_the_cores_between_workers(tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    assert CESConfig(workers=1).resolved_build_jobs() == cores
    assert CESConfig(workers=cores).resolved_build_jobs() == 1
    assert CESConfig(workers=cores * 4).resolved_build_jobs() == 1
    assert CESConfig(workers=1, build_jobs=3).resolved_build_jobs() == 3


def test_dune_commands_carry_the_jobs_and_overrides_win(tmp_path: Path) -> None:
    (tmp_path / "dune-project").write_text("(lang dune 2.9)\n")
    adapter = get_adapter("auto", tmp_path, jobs=1)
    assert adapter.command("build", [], {}) == "dune build -j 1 --root . 2>&1"
    assert adapter.command("test", [], {}) == "dune runtest -j 1 --root . --force 2>&1"
    assert adapter.command("build", [], {"build": "dune build @install"}) == "dune build @install"
    plain = get_adapter("dune", tmp_path)
    assert plain.command("typecheck", [], {}) == "dune build --root . @check 2>&1"
