"""Label examples with real builds through the CES's warm trees: one warm tree per base (a
revision of a repository, or a snapshot's tree), then every state on top of it — each part of
a split commit, each example's gold diff — as a CES job, an incremental build in that tree
(tests are not run). Nothing is built in the user's repository or workspace.

``stats["base_build"]`` / ``stats["target_build"]`` say green / red / unknown;
``stats["target_diagnostics"]`` (and ``base_diagnostics``) carry the full diagnostics and
``*_first_error`` the first one as a line. The build follows the scope ``bactrian doctor``
saved for the repository or workspace (or one given), and a base that is red is reported
with the cause read from dune's output and the scope that would leave it out.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.buildstatus.diagnostics import parse_ocaml
from bactrian.ces.api import get_backend
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, Job
from bactrian.dataset.example import Example
from bactrian.dataset.splits import materialize_base
from bactrian.dune import BuildScope, lists_dune_project
from bactrian.errors import BactrianError, BaseNotGreenError
from bactrian.mine.filemap import apply_to_map
from bactrian.mine.textdiff import render, split_files
from bactrian.mine.vcs import open_vcs
from bactrian.scopes import hint_line, load_scope, tree_files


@dataclass
class Label:
    """The build state of one tree."""

    state: str  # green | red | unknown
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    first: str = ""  # the first diagnostic (or the reason for unknown), one line

    def to_stats(self, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {f"{prefix}_build": self.state}
        if self.state != "green":
            out[f"{prefix}_diagnostics"] = self.diagnostics
            out[f"{prefix}_first_error"] = self.first
        return out


def _first_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1][:300] if lines else ""


def label_from_verdict(v: Any) -> Label:
    """A CES verdict as a build label: every stage passed → green; a failed parse, typecheck
    or build → red with its diagnostics; a diff that does not apply, a timeout or a machine
    fault → unknown."""
    if v.error:
        return Label("unknown", [], v.error)
    if v.ok:
        return Label("green")
    failed = next((s for s in v.stages if s.status not in ("passed", "skipped")), None)
    if failed is None:
        return Label("unknown", [], "no stage ran")
    if failed.name == "apply":
        return Label("unknown", [], "the diff does not apply: " + _first_line(failed.output))
    if failed.status != "failed":
        return Label("unknown", [], f"{failed.name} {failed.status}")
    diags = [d.to_dict() for d in v.diagnostics]
    first = v.diagnostics[0].headline() if v.diagnostics else _first_line(failed.output)
    return Label("red", diags, first)


class Labeller:
    """Builds states through the CES (``local`` backend by default, one worker per base).
    Also a :class:`bactrian.mine.vcs.PartChecker`."""

    def __init__(
        self,
        *,
        scope: BuildScope | None = None,
        build_cmd: str | None = None,
        config: Any = None,
        backend: str = "local",
        timeout_s: float | None = None,
    ) -> None:

        self.scope = scope
        self.build_cmd = build_cmd
        # "trust": a gold diff's own test edits are the change, not an attack (the test
        # stage is off anyway; this keeps the CES from failing a diff for touching tests)
        self.config = config or CESConfig.load(workers=1, edits_tests_policy="trust")
        self.backend_name = backend
        self.timeout_s = timeout_s
        self.red_bases: list[dict[str, str]] = []
        self.counts: dict[str, int] = {}
        self.warm_trees = 0
        self.jobs = 0

    # ------------------------------------------------------------ the CES
    def _backend(self) -> Any:

        return get_backend(self.backend_name, self.config)

    def stages(self, files: list[str], owner: str) -> dict[str, str] | None:
        """Stage commands for a tree with ``files``: the scope's dune commands (or the build
        command), tests off. ``None`` when nothing knows how to build it."""
        if self.build_cmd:
            return {"typecheck": self.build_cmd, "build": "", "test": ""}
        if not lists_dune_project(files):
            return None
        scope = self.scope or self._saved_scope(owner) or BuildScope()
        jobs = self.config.resolved_build_jobs()
        return {
            "typecheck": scope.command("check", files, jobs=jobs),
            "build": scope.command("default", files, jobs=jobs),
            "test": "",
        }

    @staticmethod
    def _saved_scope(owner: str) -> BuildScope | None:

        try:
            return load_scope(owner) if owner else None
        except BactrianError:
            return None

    def states(self, spec: Any, diffs: list[str], *, what: str) -> tuple[Label, list[Label]]:
        """Warm ``spec`` (one tree), then each diff as a job against it."""

        be = self._backend()
        base = Label("green")
        try:
            be.warm(spec, 1)
        except BaseNotGreenError as exc:
            base = self._red_base(str(exc), what)
            spec = dataclasses.replace(spec, require_green=False)
            try:
                be.warm(spec, 1)
            except BactrianError as exc2:
                return Label("unknown", [], str(exc2)[:300]), [
                    Label("unknown", [], "base could not be warmed") for _ in diffs
                ]
        except BactrianError as exc:
            return Label("unknown", [], _first_line(str(exc))), [
                Label("unknown", [], "base could not be warmed") for _ in diffs
            ]
        self.warm_trees += 1
        jobs = [
            Job(base=spec, diff=d, allow_lenient=False, timeout_s=self.timeout_s) for d in diffs
        ]
        self.jobs += len(jobs)
        verdicts = be.evaluate(jobs) if jobs else []
        return base, [label_from_verdict(v) for v in verdicts]

    def _red_base(self, message: str, what: str) -> Label:

        output = message.split("Output:\n", 1)[-1].split("\nFix the base or pass", 1)[0]
        diags = parse_ocaml(output)
        first = diags[0].headline() if diags else _first_line(output)
        owner = what.split("@", 1)[0]
        if not any(r["owner"] == owner for r in self.red_bases):
            self.red_bases.append(
                {"owner": owner, "base": what, "hint": hint_line(output, None, owner)}
            )
        return Label("red", [d.to_dict() for d in diags], first)

    # ------------------------------------------------------------ parts of a commit
    def check(self, reader: Any, commit: Any, diffs: list[str]) -> tuple[Label, list[Label]]:
        if commit.parent is None:
            return Label("unknown", [], "root commit"), [Label("unknown") for _ in diffs]
        return self._vcs_states(reader, commit.parent, diffs)

    def _vcs_states(self, reader: Any, rev: str, diffs: list[str]) -> tuple[Label, list[Label]]:

        owner = str(reader.repo)
        stages = self.stages(reader.files(rev), owner)
        if stages is None:
            reason = "no dune-project and no --build-cmd: nothing to build"
            return Label("unknown", [], reason), [Label("unknown", [], reason) for _ in diffs]
        spec = BaseSpec(source=owner, rev=rev, vcs=reader.kind, stages=stages)
        return self.states(spec, diffs, what=f"{owner}@{rev[:12]}")

    # ------------------------------------------------------------ examples
    def label_examples(self, examples: Iterable[Example]) -> dict[str, int]:
        """Label every example not labelled yet (split parts are labelled while mining)."""
        todo = [e for e in examples if "target_build" not in e.stats]
        vcs: dict[tuple[str, str, str], list[Example]] = {}
        snaps: list[Example] = []
        for ex in todo:
            kind = ex.base.get("type")
            if kind in ("git", "hg") and ex.base.get("rev"):
                vcs.setdefault((kind, ex.base["repo"], ex.base["rev"]), []).append(ex)
            elif kind == "snapshot":
                snaps.append(ex)
            else:
                ex.stats.update(Label("unknown", [], "no base to build").to_stats("base"))
                ex.stats.update(Label("unknown", [], "no base to build").to_stats("target"))
        for (kind, repo, rev), exs in vcs.items():
            self._label_vcs(kind, repo, rev, exs)
        for ex in snaps:
            self._label_snapshot(ex)
        return self.tally(examples)

    def _label_vcs(self, kind: str, repo: str, rev: str, exs: list[Example]) -> None:

        reader = open_vcs(Path(repo), kind)
        diffs: list[str] = []
        plan: list[tuple[int | None, int]] = []  # (index of the pre state, index of the target)

        def add(d: str) -> int:
            if d not in diffs:
                diffs.append(d)
            return diffs.index(d)

        for ex in exs:
            pre = ex.base.get("pre_diff") or ""
            if not pre:
                plan.append((None, add(ex.diff)))
                continue
            paths = sorted({f.path for f in split_files(pre) + split_files(ex.diff)})
            old = reader.read(rev, paths)
            mid = apply_to_map(old, pre)
            end = apply_to_map(mid, ex.diff)
            plan.append((add(render(old, mid)), add(render(old, end))))
        base, after = self._vcs_states(reader, rev, diffs)
        for ex, (pre_i, tgt_i) in zip(exs, plan, strict=True):
            b = base if pre_i is None else after[pre_i]
            ex.stats.update({**b.to_stats("base"), **after[tgt_i].to_stats("target")})

    def _label_snapshot(self, ex: Example) -> None:

        tmp = Path(tempfile.mkdtemp(prefix="bactrian-label-"))
        try:
            tree = materialize_base(ex, tmp / "base")
            owner = str(ex.base.get("workspace", ""))
            stages = self.stages(tree_files(tree), owner)
            if stages is None:
                reason = "no dune-project and no --build-cmd: nothing to build"
                ex.stats.update(Label("unknown", [], reason).to_stats("base"))
                ex.stats.update(Label("unknown", [], reason).to_stats("target"))
                return
            spec = BaseSpec(source=str(tree), stages=stages)
            what = f"{owner}@snapshot {ex.base.get('seq', '?')}"
            base, (target,) = self.states(spec, [ex.diff], what=what)
            ex.stats.update({**base.to_stats("base"), **target.to_stats("target")})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def tally(examples: Iterable[Example]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ex in examples:
            for side in ("base", "target"):
                state = ex.stats.get(f"{side}_build")
                if state:
                    key = f"{side}_{state}"
                    counts[key] = counts.get(key, 0) + 1
        return counts


def label_examples(
    examples: Iterable[Example],
    work: Path | None = None,
    *,
    build_cmd: str | None = None,
    timeout_s: float = 300.0,
    scope: BuildScope | None = None,
    config: Any = None,
) -> dict[str, int]:
    """Label ``examples`` (see :class:`Labeller`); ``work`` (optional) holds the CES's
    trees, else the CES's own work dir. Returns counts like ``{"base_green": 3, ...}``."""

    cfg = config or CESConfig.load(
        workers=1, edits_tests_policy="trust", **({"work_dir": work} if work else {})
    )
    labeller = Labeller(scope=scope, build_cmd=build_cmd, config=cfg, timeout_s=timeout_s)
    return labeller.label_examples(list(examples))
