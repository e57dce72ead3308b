"""Label examples by building their trees: the base (what the diff applies to) and the target
(base + gold diff), each with a real build probe, in throw-away directories under ``work``.

For VCS parts this says whether each part's base builds; for any example it checks that the gold
diff leaves the tree green (``stats["base_build"]``, ``stats["target_build"]``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from bactrian.buildstatus.probe import BuildProbe, choose_probe
from bactrian.buildstatus.workspace import is_dune_project
from bactrian.dataset.example import Example
from bactrian.dataset.splits import materialize_base
from bactrian.mine.filemap import apply_to_dir


def make_probe(tree: Path, build_cmd: str | None = None, timeout_s: float = 300.0) -> BuildProbe:
    if build_cmd:
        return choose_probe(tree, probe="command", build_cmd=build_cmd, timeout_s=timeout_s)
    name = "dune" if is_dune_project(tree) else "none"
    return choose_probe(tree, probe=name, timeout_s=timeout_s)


def label_examples(
    examples: Iterable[Example],
    work: Path,
    *,
    build_cmd: str | None = None,
    timeout_s: float = 300.0,
    keep: bool = False,
) -> dict[str, int]:
    """Build each example's base and target; record the states in its stats. Returns counts
    like ``{"base_green": 3, "target_green": 4, ...}``."""
    counts: dict[str, int] = {}
    for ex in examples:
        tree = Path(work) / ex.id
        if tree.exists():
            shutil.rmtree(tree)
        materialize_base(ex, tree)
        probe = make_probe(tree, build_cmd, timeout_s)
        base = probe.run(tree)
        apply_to_dir(tree, ex.diff)
        target = probe.run(tree)
        ex.stats["base_build"] = base.state.value
        ex.stats["target_build"] = target.state.value
        for key in (f"base_{base.state.value}", f"target_{target.state.value}"):
            counts[key] = counts.get(key, 0) + 1
        if not keep:
            shutil.rmtree(tree, ignore_errors=True)
    return counts
