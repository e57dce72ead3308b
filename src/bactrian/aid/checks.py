"""Checks on every proposal: does its diff apply — strictly, else by the lenient ladder — to
the editor's current text (unsaved buffers win over disk)? And, per arm, what does the CES
say about it against a sandbox copy of the workspace's current state?

Nothing here writes the workspace, except :func:`apply_check` with ``write=True`` (the
``apply`` method with ``target: "files"``, the user's explicit request), which goes through
:func:`bactrian.diffs.apply_patch`: all files or none, no path out of the tree.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.aid.config import AidConfig
from bactrian.aid.context import SKIP_DIRS, read_text
from bactrian.aid.paths import workspace_path
from bactrian.aid.protocol import RpcError
from bactrian.ces.api import evaluate
from bactrian.ces.contract import BaseSpec
from bactrian.diffs import apply_patch, apply_to_files, parse_patch, render_diff, touched_paths
from bactrian.errors import BactrianError, DiffError
from bactrian.models import CancelToken

log = logging.getLogger(__name__)


@dataclass
class ApplyCheck:
    applies: bool
    lenient: bool = False
    diff: str = ""  # clean git-style diff against the texts given
    files: list[dict[str, Any]] = field(default_factory=list)
    new_texts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    written: list[str] = field(default_factory=list)


def _decode(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def apply_check(
    root: Path, diff: str, texts: Mapping[str, str], max_bytes: int, *, write: bool = False
) -> ApplyCheck:
    """Apply ``diff`` to ``texts`` (the files it touches read from disk when not given)."""
    try:
        patch = parse_patch(diff)
        paths = touched_paths(patch)
        for p in paths:
            workspace_path(root, p)
    except RpcError as exc:
        return ApplyCheck(False, error=exc.message)
    except DiffError as exc:
        return ApplyCheck(False, error=str(exc))
    base: dict[str, str] = {}
    for p in paths:
        text = texts.get(p)
        if text is None:
            text = read_text(root, p, max_bytes)
        if text is not None:
            base[p] = text
    result = None
    new: dict[str, bytes] = {}
    try:
        for lenient in (False, True):
            new, result = apply_to_files(base, patch, lenient=lenient)
            if result.ok:
                break
    except DiffError as exc:
        return ApplyCheck(False, error=str(exc))
    assert result is not None
    hunks = {f.path: f for f in result.files}
    if not result.ok:
        failed = [
            f"{f.path}: {f.error or 'hunks failed'}"
            for f in result.files
            if f.status == "failed" or f.error
        ]
        return ApplyCheck(
            False,
            result.lenient,
            files=[f.to_dict() for f in result.files],
            error="; ".join(failed) or "the diff does not apply",
        )
    changed = set(result.changed_paths)
    old_b = {p: t.encode() for p, t in base.items() if p in changed}
    new_b = {p: v for p, v in new.items() if p in changed}
    files = []
    new_texts: dict[str, str] = {}
    for p in sorted(changed):
        fr = hunks.get(p)
        text = _decode(new_b[p]) if p in new_b else None
        if text is not None:
            new_texts[p] = text
        one = render_diff({p: old_b[p]} if p in old_b else {}, {p: new_b[p]} if p in new_b else {})
        files.append(
            {
                "path": p,
                "status": fr.status if fr else "modified",
                "diff": one,
                "newText": text,
                "hunks": [h.to_dict() for h in fr.hunks] if fr else [],
            }
        )
    check = ApplyCheck(True, result.lenient, render_diff(old_b, new_b), files, new_texts)
    if write:
        try:
            res = apply_patch(root, check.diff, lenient=False)
            if not res.ok:
                res = apply_patch(root, check.diff, lenient=True)
        except (DiffError, BactrianError) as exc:
            return ApplyCheck(False, error=str(exc))
        if not res.ok:
            return ApplyCheck(
                False,
                True,
                files=[f.to_dict() for f in res.files],
                error="the diff does not apply to the files on disk (save the buffers first)",
            )
        check.written = list(res.changed_paths)
    return check


class Checker:
    """The per-arm CES check: a copy of the workspace's current state (sources only, no
    ``_build``), keyed by its stat data, is the base; the CES judges the diff against it."""

    def __init__(self, config: AidConfig) -> None:
        self.config = config
        self._lock = threading.Lock()

    def available(self) -> bool:
        return True

    def _copy(self, root: Path, dest_dir: Path) -> Path:
        h = hashlib.sha256()
        entries = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                rel = os.path.relpath(full, root)
                entries.append(rel)
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        dest = dest_dir / h.hexdigest()[:16]
        if not dest.exists():
            tmp = dest.with_suffix(".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(root, tmp, symlinks=True, ignore=shutil.ignore_patterns(*SKIP_DIRS))
            os.replace(tmp, dest)
            for old in sorted(dest_dir.iterdir(), key=lambda p: p.stat().st_mtime)[:-3]:
                if old != dest:
                    shutil.rmtree(old, ignore_errors=True)
        return dest

    def judge(self, root: Path, diff: str, cancel: CancelToken) -> dict[str, Any]:
        from_dir = Path(self.config.metrics_path()).parent / "ces-bases"
        from_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            with self._lock:
                base = self._copy(root, from_dir)
            spec = BaseSpec(source=str(base), stages={"test": ""}, require_green=False)
            cancel.check()
            [verdict] = evaluate(spec, [diff], timeout_s=self.config.ces_timeout_s)
        except BactrianError as exc:
            return {"stage": None, "passed": False, "error": str(exc), "stages": {}}
        except OSError as exc:
            return {
                "stage": None,
                "passed": False,
                "error": f"copying the workspace failed: {exc}",
                "stages": {},
            }
        return {
            "stage": verdict.furthest,
            "passed": bool(verdict.ok),
            "error": verdict.error,
            "stages": {s.name: s.status for s in verdict.stages},
            "diagnostics": [d.to_dict() for d in verdict.diagnostics][:20],
            "output": next((s.output[-2000:] for s in verdict.stages if s.status == "failed"), ""),
        }
