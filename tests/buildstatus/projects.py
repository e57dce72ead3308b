"""Small real OCaml/dune projects for the build tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

LEDGER_ML = """let add x y = x + y
let total xs = List.fold_left add 0 xs
"""
LEDGER_MLI = """val add : int -> int -> int
val total : int list -> int
"""


def write_project(root: Path, files: dict[str, str]) -> Path:
    """A dune 2.9 project at ``root`` with a ``ledger`` library plus ``files``."""
    base = {
        "dune-project": "(lang dune 2.9)\n",
        "lib/dune": "(library (name ledger))\n",
        "lib/ledger.ml": LEDGER_ML,
        "lib/ledger.mli": LEDGER_MLI,
    }
    base.update(files)
    for rel, text in base.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def run_dune(root: Path, *targets: str, profile: str | None = None) -> tuple[int, str]:
    """``dune build`` in ``root``; returns (exit code, combined output)."""
    extra = ["--profile", profile] if profile else []
    env = dict(os.environ)
    env.pop("INSIDE_DUNE", None)
    proc = subprocess.run(
        ["dune", "build", *(targets or ("@check",)), "--root", ".", "--display", "short", *extra],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr
