"""The build scope bactrian keeps for a workspace or repository, outside it: where it lives
(:func:`workspace_config_path`), saving and loading it (``bactrian doctor`` saves, the snapshot
probe and ``bactrian mine --label`` load), the dune targets narrowed to it
(:func:`scoped_build_config`), and one-line hints for a red build read from its output alone
(:func:`hint_line`, used by the snapshotter and the labeller without building again)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import time
import tomllib
from pathlib import Path
from typing import Any

from bactrian.config import config_path
from bactrian.dune import BuildScope, Cause, DuneIndex, is_dune_project, red_causes, suggest_scopes
from bactrian.errors import BactrianError, WorkspaceError

# ---------------------------------------------------------------- the workspace's config


def _key(target: Path) -> str:
    return hashlib.sha256(str(Path(target).resolve()).encode()).hexdigest()[:16]


def workspace_config_path(target: Path | str) -> Path:
    """Where bactrian keeps its settings for one workspace or repository (outside it)."""
    t = Path(target).expanduser().resolve()
    return config_path().parent / "workspaces" / f"{t.name or 'root'}-{_key(t)}.toml"


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(x) for x in items) + "]"


def save_scope(target: Path | str, scope: BuildScope, *, note: str = "") -> Path:
    """Write ``scope`` as the build scope of ``target`` (replacing an earlier one)."""
    path = workspace_config_path(target)
    t = Path(target).expanduser().resolve()
    if path.resolve().is_relative_to(t):
        raise WorkspaceError(
            f"The bactrian config dir {path.parent} is inside {t}; bactrian never writes inside "
            "a workspace. Set XDG_CONFIG_HOME or BACTRIAN_CONFIG elsewhere."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# written by `bactrian doctor` on {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"workspace = {json.dumps(str(t))}",
        "",
        "[build]",
        f"only_packages = {_toml_list(scope.only_packages)}",
        f"exclude_dirs = {_toml_list(scope.exclude_dirs)}",
    ]
    if note:
        lines.append(f"note = {json.dumps(note)}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path


def load_scope(target: Path | str) -> BuildScope | None:
    """The build scope ``bactrian doctor`` saved for ``target``, or ``None``."""
    path = workspace_config_path(target)
    if not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BactrianError(
            f"The workspace config {path} is not valid TOML ({exc}); run `bactrian doctor "
            f"{target}` again or delete the file."
        ) from exc
    scope = BuildScope.from_dict(data.get("build", {}))
    return None if scope.empty else scope


def tree_files(root: Path) -> list[str]:
    out = []
    for p in Path(root).rglob("*"):
        rel = p.relative_to(root)
        if rel.parts and rel.parts[0] in ("_build", ".git", ".hg", "_opam"):
            continue
        if p.is_file():
            out.append(str(rel))
    return sorted(out)


def scoped_targets(scope: BuildScope, targets: str, files: list[str]) -> str:
    """``@check @runtest`` under ``scope`` (directory-scoped aliases)."""
    out: list[str] = []
    for t in shlex.split(targets):
        if t.startswith("@") and not t.startswith("@@") and "/" not in t:
            out += scope.targets(t[1:], files)
        else:
            out.append(t)
    return " ".join(out)


def scoped_build_config(workspace: Path, config: Any) -> Any:
    """``config`` (a :class:`bactrian.buildstatus.probe.BuildConfig`) with the dune targets
    and arguments narrowed to the scope saved for ``workspace``; unchanged when none is."""
    scope = load_scope(workspace)
    if scope is None or not is_dune_project(workspace):
        return config
    files = tree_files(workspace)
    return dataclasses.replace(
        config,
        dune_targets=scoped_targets(scope, config.dune_targets, files),
        dune_args=" ".join([config.dune_args, *map(shlex.quote, scope.dune_args())]).strip(),
    )


def explain_red(log: str, tree: Path | None = None) -> tuple[list[Cause], list[BuildScope]]:
    """Causes and (unverified) scope suggestions from a red build's output alone — what the
    snapshotter and the labeller say without building again."""
    causes = red_causes(log)
    index = DuneIndex.from_dir(tree) if tree is not None and is_dune_project(tree) else None
    if index is None:  # no stanzas to look at: leave out what misses a dependency only
        dirs = sorted({c.dir for c in causes if c.dir and c.kind != "error"})
        return causes, [BuildScope(exclude_dirs=dirs)] if dirs else []
    return causes, suggest_scopes(causes, index)


def hint_line(log: str, tree: Path | None, target: str) -> str:
    """One line: the first cause and the suggested scope, pointing at ``bactrian doctor``."""
    causes, scopes = explain_red(log, tree)
    cause = causes[0].headline() if causes else "see the build log"
    if not scopes:
        return f"{cause} (no scope leaves it out: the code itself does not build there)"
    return (
        f"{cause}; try the scope {scopes[0].describe()} "
        f"(`bactrian doctor {target}` checks it and saves it)"
    )
