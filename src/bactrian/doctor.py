"""``bactrian doctor WS|REPO``: why a workspace's default build is red, and a build scope that
works.

It builds a copy of the tree (a workspace's files, or a repository's revision; never inside
the workspace), reads the causes from dune's output (``bench/`` needs ``core_bench``:
``Library "core_bench" not found``), tries the scopes that leave the broken part out
(``--only-packages …``, then the failing directories excluded) and saves the first one that
builds in the workspace's own bactrian config, under bactrian's config directory::

    ~/.config/bactrian/workspaces/<name>-<key>.toml
    [build]
    only_packages = []
    exclude_dirs = ["bench"]

The snapshot probe (:func:`scoped_build_config`) and ``bactrian mine --label`` read that
scope back (:func:`load_scope`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from bactrian import vcs
from bactrian.buildstatus.probe import CommandProbe
from bactrian.ces.tree import copy_tree, detect_vcs
from bactrian.dune import BuildScope, Cause, DuneIndex, is_dune_project, red_causes, suggest_scopes
from bactrian.errors import WorkspaceError
from bactrian.scopes import (  # noqa: F401  (re-exported: the doctor's library surface)
    explain_red,
    hint_line,
    load_scope,
    save_scope,
    scoped_build_config,
    tree_files,
    workspace_config_path,
)

# ---------------------------------------------------------------- diagnosis


@dataclass
class Diagnosis:
    target: str
    rev: str | None
    state: str  # the default build: green | red | unknown
    command: str
    causes: list[Cause] = field(default_factory=list)
    tried: list[dict[str, Any]] = field(default_factory=list)
    scope: BuildScope | None = None  # the first scope that builds green
    saved_to: str | None = None
    log_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "rev": self.rev,
            "state": self.state,
            "command": self.command,
            "causes": [c.to_dict() for c in self.causes],
            "tried": self.tried,
            "scope": self.scope.to_dict() if self.scope else None,
            "suggestion": self.scope.describe() if self.scope else None,
            "saved_to": self.saved_to,
            "log_tail": self.log_tail,
        }

    def lines(self) -> list[str]:
        at = f" at {self.rev}" if self.rev else ""
        out = [f"{self.target}{at}: default build ({self.command}) is {self.state}"]
        for c in self.causes:
            out.append(f"  cause: {c.headline()}")
        if self.state == "unknown":
            out.append("  " + (self.log_tail.strip().splitlines() or ["(no output)"])[-1])
        for t in self.tried:
            out.append(f"  tried {t['suggestion']}: {t['state']}")
        if self.scope is not None:
            out.append(f"  suggested scope: {self.scope.describe()}")
        elif self.state == "red":
            out.append("  no scope that leaves the broken part out builds green")
        if self.saved_to:
            out.append(f"  saved to {self.saved_to}")
        return out


def _export(target: Path, rev: str | None, dest: Path) -> None:

    kind = detect_vcs(target) or _bare_kind(target)
    if rev is not None or (kind is not None and not is_dune_project(target)):
        if kind is None:
            raise WorkspaceError(
                f"{target} is not a git or Mercurial repository, so --rev cannot be used."
            )
        want = rev or ("HEAD" if kind == "git" else ".")
        probe = (
            ["git", "-C", str(target), "rev-parse", "--verify", "--quiet", f"{want}^{{commit}}"]
            if kind == "git"
            else ["hg", "-R", str(target), "log", "-r", want, "-T", "{node}"]
        )
        try:
            vcs.run_vcs(probe, target, error=WorkspaceError)
        except WorkspaceError:
            raise WorkspaceError(
                f"no revision {want!r} in {target}. Pass a commit, tag or branch it has."
            ) from None
        dest.mkdir(parents=True)
        vcs.archive(target, kind, want, dest)
    else:
        copy_tree(target, dest)


def _bare_kind(target: Path) -> str | None:
    return "git" if (target / "HEAD").is_file() and (target / "objects").is_dir() else None


def _build(tree: Path, command: str, timeout_s: float) -> Any:

    probe = CommandProbe(
        command=command, timeout_s=timeout_s, env={"OCAML_COLOR": "never", "DUNE_CACHE": "disabled"}
    )
    return probe.run(tree)


MAX_TRIES = 8


def _try_scope(
    tree: Path, scope: BuildScope, alias: str, files: list[str], timeout_s: float
) -> tuple[str, str]:
    """Build ``alias`` and then ``default`` under ``scope``: (state, log of the last build)."""
    state, log = "green", ""
    for a in dict.fromkeys([alias, "default"]):
        res = _build(tree, scope.command(a, files), timeout_s)
        state, log = res.state.value, res.log
        if state != "green":
            break
    return state, log


def _widen(scope: BuildScope, causes: list[Cause], index: DuneIndex) -> BuildScope | None:
    """``scope`` leaving out what ``causes`` name too (same kind of scope), or ``None``."""
    if not causes:
        return None
    extra = suggest_scopes(causes, index)
    if scope.only_packages:
        nxt = next((s for s in extra if s.only_packages), None)
        if nxt is not None:
            keep = sorted(set(scope.only_packages) & set(nxt.only_packages))
            dirs = sorted(set(scope.exclude_dirs) | set(nxt.exclude_dirs))
        else:  # what still fails belongs to no package: leave its directories out
            keep = list(scope.only_packages)
            dirs = sorted(set(scope.exclude_dirs) | {c.dir for c in causes if c.dir})
        wider = BuildScope(only_packages=keep, exclude_dirs=dirs)
        return wider if keep and wider != scope else None
    nxt = next((s for s in extra if s.exclude_dirs and not s.only_packages), None)
    if nxt is None:
        return None
    dirs = sorted(set(scope.exclude_dirs) | set(nxt.exclude_dirs))
    return BuildScope(exclude_dirs=dirs) if dirs != sorted(scope.exclude_dirs) else None


def diagnose(
    target: Path | str,
    *,
    rev: str | None = None,
    alias: str = "check",
    timeout_s: float = 900.0,
    save: bool = True,
) -> Diagnosis:
    """Build ``target`` (a copy of it) with dune's default ``alias``; when red, name the
    causes and find a scope that builds (the ``alias`` and ``default``); save it with
    ``save``."""
    target = Path(target).expanduser()
    if not target.exists():
        raise WorkspaceError(f"{target} does not exist. Pass a workspace or repository path.")
    with tempfile.TemporaryDirectory(prefix="bactrian-doctor-") as tmp:
        tree = Path(tmp) / "tree"
        _export(target.resolve(), rev, tree)
        if not is_dune_project(tree):
            raise WorkspaceError(
                f"{target} has no dune-project at its root: `bactrian doctor` knows dune builds "
                "only. Set [build] build_cmd for other builds."
            )
        files = tree_files(tree)
        command = BuildScope().command(alias, files)
        first = _build(tree, command, timeout_s)
        diag = Diagnosis(str(target), rev, first.state.value, command, log_tail=first.log[-4000:])
        if first.state.value == "red":
            diag.causes = red_causes(first.log)
            index = DuneIndex.from_dir(tree)
            queue = suggest_scopes(diag.causes, index)
            while queue and len(diag.tried) < MAX_TRIES:
                scope = queue.pop(0)
                state, log = _try_scope(tree, scope, alias, files, timeout_s)
                diag.tried.append(
                    {"scope": scope.to_dict(), "suggestion": scope.describe(), "state": state}
                )
                if state == "green":
                    diag.scope = scope
                    break
                if state != "red":
                    continue
                # dune stops at the first broken stanza: what the narrower build still
                # trips on is one more thing to leave out
                more = [c for c in red_causes(log) if c not in diag.causes]
                diag.causes += more
                wider = _widen(scope, more, index)
                if wider is not None:
                    queue.insert(0, wider)
    if save and diag.state != "unknown":
        note = "; ".join(c.headline() for c in diag.causes)
        if diag.state == "green":
            diag.saved_to = str(save_scope(target, BuildScope(), note="default build is green"))
        elif diag.scope is not None:
            diag.saved_to = str(save_scope(target, diag.scope, note=note))
    return diag


def union_scope(scopes: list[BuildScope]) -> BuildScope | None:
    """One scope that leaves out what every one of ``scopes`` leaves out (directories
    excluded by any; packages kept by all), or ``None`` when there is none."""
    if not scopes:
        return None
    dirs = sorted({d for s in scopes for d in s.exclude_dirs})
    pkg_sets = [set(s.only_packages) for s in scopes if s.only_packages]
    pkgs = sorted(set.intersection(*pkg_sets)) if pkg_sets else []
    if pkg_sets and not pkgs:
        return BuildScope(exclude_dirs=dirs) if dirs else None
    return BuildScope(only_packages=pkgs, exclude_dirs=dirs)


def diagnose_revisions(
    target: Path | str,
    revs: list[str],
    *,
    alias: str = "check",
    timeout_s: float = 900.0,
    save: bool = True,
) -> tuple[list[Diagnosis], BuildScope | None, str | None]:
    """:func:`diagnose` at each of ``revs`` (a history's old and new ends), and the scope
    covering them all, saved with ``save``: (diagnoses, scope, where it was saved)."""
    diags = [diagnose(target, rev=r, alias=alias, timeout_s=timeout_s, save=False) for r in revs]
    scope = union_scope([d.scope for d in diags if d.scope is not None])
    saved = None
    if save and all(d.state != "unknown" for d in diags):
        if scope is not None:
            note = "; ".join(dict.fromkeys(c.headline() for d in diags for c in d.causes))
            saved = str(save_scope(target, scope, note=note))
        elif all(d.state == "green" for d in diags):
            saved = str(save_scope(target, BuildScope(), note="default build is green"))
    return diags, scope, saved


@click.command()
@click.argument("target", type=click.Path(path_type=Path))
@click.option(
    "--rev",
    "revs",
    multiple=True,
    help="Check this revision of a git/Mercurial repository (repeatable: the scope saved "
    "covers every revision given, e.g. the two ends of the range you will mine).",
)
@click.option("--alias", default="check", show_default=True, help="The dune alias to build.")
@click.option("--timeout", "timeout_s", type=float, default=900.0, show_default=True)
@click.option("--no-save", is_flag=True, help="Print the diagnosis; do not save the scope.")
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON.")
def doctor(
    target: Path, revs: tuple[str, ...], alias: str, timeout_s: float, no_save: bool, as_json: bool
) -> None:
    """Say why the default build of TARGET (a workspace or repository) is red, find a build
    scope that works (--only-packages …, or directories left out) and save it for the
    snapshotter and `bactrian mine --label` (in bactrian's config dir, not in TARGET)."""
    if len(revs) <= 1:
        d = diagnose(
            target,
            rev=revs[0] if revs else None,
            alias=alias,
            timeout_s=timeout_s,
            save=not no_save,
        )
        if as_json:
            click.echo(json.dumps(d.to_dict(), indent=2, sort_keys=True))
        else:
            for line in d.lines():
                click.echo(line)
        return
    diags, scope, saved = diagnose_revisions(
        target, list(revs), alias=alias, timeout_s=timeout_s, save=not no_save
    )
    if as_json:
        out = {
            "diagnoses": [d.to_dict() for d in diags],
            "scope": scope.to_dict() if scope else None,
            "suggestion": scope.describe() if scope else None,
            "saved_to": saved,
        }
        click.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    for d in diags:
        for line in d.lines():
            click.echo(line)
    if scope is not None:
        click.echo(f"scope for every revision: {scope.describe()}")
    if saved:
        click.echo(f"saved to {saved}")
