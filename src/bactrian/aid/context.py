"""What the model sees for one request: the files chosen (with why), the diagnostics and the
prompt, as the :class:`bactrian.strategies.PromptInput` that every strategy renders — the same
object the miner's examples become, so a live request and a mined example with the same inputs
render byte-identical prompts.

Order of choice (the strategy then cuts to the token budget, dropping files the diagnostics
do not name first): the current file (its unsaved text wins over disk), its ``.ml``/``.mli``
sibling and its tests (by module stem, :func:`bactrian.mine.context.relevant_files`), the
files the diagnostics name, the other open buffers, recently edited files (from the snapshot
store when the workspace is snapshotted), then retrieval hits (behind ``[aid] retrieval``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.aid.paths import workspace_path
from bactrian.aid.protocol import RpcError
from bactrian.mine.context import SOURCES, is_test_path, module_stem, relevant_files
from bactrian.strategies import PromptInput

SKIP_DIRS = {"_build", "_opam", ".git", ".hg", ".svn", "node_modules", "_esy", ".bactrian"}
INDEX_TTL_S = 10.0


class WorkspaceIndex:
    """The workspace's source files (relative paths), walked once and refreshed in the
    background when older than :data:`INDEX_TTL_S`, so a request never walks the tree."""

    def __init__(self, root: Path, suffixes: tuple[str, ...] = SOURCES + ("dune",)) -> None:
        self.root = root
        self.suffixes = suffixes
        self._files: list[str] = []
        self._stems: dict[str, list[str]] = {}
        self._at = 0.0
        self._lock = threading.Lock()
        self._refreshing = False
        self._dirs: dict[str, tuple[int, list[str], list[str]]] = {}  # rel dir -> listing

    def _walk(self) -> list[str]:
        """The source files under the root. A directory whose mtime is unchanged since the
        last walk (and not from the last second, where a same-tick change could hide) is not
        listed again: a refresh of a 10,000-file tree stats its directories, not its files,
        and holds the GIL for a millisecond or so instead of tens while requests run."""
        out: list[str] = []
        seen: dict[str, tuple[int, list[str], list[str]]] = {}
        now_ns = time.time_ns()
        stack = [""]
        while stack:
            rel = stack.pop()
            full = os.path.join(self.root, rel) if rel else str(self.root)
            try:
                mtime = os.stat(full).st_mtime_ns
            except OSError:
                continue
            cached = self._dirs.get(rel)
            if cached is not None and cached[0] == mtime and now_ns - mtime > 1_000_000_000:
                files, subs = cached[1], cached[2]
            else:
                files, subs = [], []
                try:
                    with os.scandir(full) as it:
                        for e in it:
                            try:
                                is_dir = e.is_dir()
                            except OSError:
                                continue
                            if not is_dir:
                                if e.name.endswith(self.suffixes):
                                    files.append(e.name)
                            elif (
                                not e.is_symlink()
                                and e.name not in SKIP_DIRS
                                and not e.name.startswith(".")
                            ):
                                subs.append(e.name)
                except OSError:
                    continue
            seen[rel] = (mtime, files, subs)
            prefix = f"{rel}/" if rel else ""
            out.extend(prefix + f for f in files)
            stack.extend(prefix + d for d in subs)
        self._dirs = seen
        return sorted(out)

    def refresh(self) -> None:
        files = self._walk()
        if files == self._files:  # nothing added or removed: keep the stem map
            with self._lock:
                self._at, self._refreshing = time.monotonic(), False
            return
        stems: dict[str, list[str]] = {}
        for f in files:
            stems.setdefault(module_stem(f), []).append(f)
        with self._lock:
            self._files, self._stems = files, stems
            self._at, self._refreshing = time.monotonic(), False

    def files(self) -> list[str]:
        with self._lock:
            empty = self._at == 0.0
            stale = time.monotonic() - self._at > INDEX_TTL_S
            start = stale and not empty and not self._refreshing
            if start:
                self._refreshing = True
        if empty:
            self.refresh()
        elif start:
            threading.Thread(target=self.refresh, daemon=True, name="aid-index").start()
        with self._lock:
            return self._files

    def with_stem(self, path: str) -> list[str]:
        """The indexed files of ``path``'s module stem (``foo.ml``, ``foo.mli``, ``test_foo.ml``)."""
        self.files()
        with self._lock:
            return list(self._stems.get(module_stem(path), []))


@dataclass
class ContextRequest:
    """A ``propose`` request's inputs, paths already checked to be inside the workspace."""

    root: Path
    prompt: str
    current: str = ""
    current_text: str | None = None
    buffers: dict[str, str] = field(default_factory=dict)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Context:
    """The chosen context: ``files`` in order with a ``reason`` each; ``texts`` every text
    known for the request (shown or not: the apply check's base)."""

    files: dict[str, str]
    reasons: dict[str, str]
    diagnostics: list[dict[str, Any]]
    prompt: str
    texts: dict[str, str]

    def prompt_input(self) -> PromptInput:
        return PromptInput(dict(self.files), list(self.diagnostics), self.prompt)


Recent = Callable[[Path], list[str]]
Retrieve = Callable[[Path, str, list[str]], list[str]]


def read_text(root: Path, rel: str, max_bytes: int) -> str | None:
    """A workspace file's text (None: missing, too large, binary or not UTF-8)."""
    try:
        with open(root / rel, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError:
        return None
    if len(data) > max_bytes or b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def build_context(
    req: ContextRequest,
    index: WorkspaceIndex,
    *,
    max_bytes: int = 256 * 1024,
    token_room: int = 0,
    count: Callable[[str], int] | None = None,
    recent: Recent | None = None,
    retrieve: Retrieve | None = None,
) -> Context:
    """Choose the context of ``req``. ``token_room`` (> 0) stops reading more files once
    about twice that many tokens are chosen (the strategy cuts the rest precisely)."""
    count = count or (lambda t: (len(t) + 3) // 4)
    files: dict[str, str] = {}
    reasons: dict[str, str] = {}
    texts: dict[str, str] = dict(req.buffers)
    if req.current and req.current_text is not None:
        texts[req.current] = req.current_text
    used = 0

    def add(rel: str, reason: str) -> None:
        nonlocal used
        if rel in files or (token_room and used > 2 * token_room):
            return
        try:
            rel = workspace_path(req.root, rel)
        except RpcError:  # a diagnostic or index path that leaves the tree: not context
            return
        text = texts.get(rel)
        if text is None:
            text = read_text(req.root, rel, max_bytes)
            if text is None:
                return
            texts[rel] = text
        files[rel] = text
        reasons[rel] = reason
        used += count(text)

    if req.current:
        add(req.current, "current")
        for rel in relevant_files([req.current], index.with_stem(req.current)):
            if rel != req.current:
                add(rel, "test" if is_test_path(rel) else "sibling")
    for d in req.diagnostics:
        path = str(d.get("file") or "")
        if path:
            add(path, "diagnostic")
    for rel in req.buffers:
        add(rel, "buffer")
    if recent is not None:
        for rel in recent(req.root):
            add(rel, "recent")
    if retrieve is not None:
        for rel in retrieve(req.root, req.prompt, list(files)):
            add(rel, "retrieval")
    return Context(files, reasons, list(req.diagnostics), req.prompt, texts)


def context_report(
    ctx: Context, count: Callable[[str], int], shown: list[str], cut: list[str]
) -> list[dict[str, Any]]:
    """The ``files`` of the ``context`` progress event: what the model saw, and why."""
    return [
        {"path": p, "reason": ctx.reasons.get(p, "current"), "tokens": count(ctx.files[p])}
        for p in shown
        if p in ctx.files
    ]


def diagnostics_of(build: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return list((build or {}).get("diagnostics") or [])
