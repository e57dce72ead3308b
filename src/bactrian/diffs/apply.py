"""Apply a patch to an in-memory file map or to a directory, strictly or leniently, safely.

Everything is computed in memory first; a directory is written only when every file applied,
each file through a temporary file and a rename, and what was written is restored when a later
write fails. Refusals raise :class:`~bactrian.errors.UnsafeDiffError`; hunks that do not apply
are reported in the :class:`~bactrian.diffs.model.ApplyResult` (nothing is written then).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bactrian.diffs.ladder import (
    DEFAULT_LADDER,
    FileIndex,
    HunkFailed,
    LadderConfig,
    place_hunk,
)
from bactrian.diffs.model import (
    ApplyResult,
    DiffLimits,
    FilePatch,
    FileResult,
    HunkResult,
    Patch,
)
from bactrian.diffs.parse import parse_patch, split_lines
from bactrian.diffs.render import render_diff
from bactrian.errors import DiffApplyError, DiffTimeoutError, UnsafeDiffError

FORBIDDEN_DIRS = frozenset({".git", ".hg"})
_UNSAFE_MODES = {"120000": "a symbolic link", "160000": "a submodule (gitlink)"}


def check_path(path: str) -> str:
    """The normalized relative path, or :class:`UnsafeDiffError` for a path that is absolute,
    climbs out with ``..``, or names ``.git``/``.hg``."""
    if not path or "\x00" in path:
        raise UnsafeDiffError(f"Refusing the diff: path {path!r} is empty or holds a NUL byte.")
    if path.startswith(("/", "\\", "~")) or (len(path) > 1 and path[1] == ":"):
        raise UnsafeDiffError(
            f"Refusing the diff: path {path!r} is absolute. Diff paths must be relative to "
            "the tree they apply to."
        )
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafeDiffError(f"Refusing the diff: path {path!r} names no file.")
    if ".." in parts:
        raise UnsafeDiffError(
            f"Refusing the diff: path {path!r} has a '..' component and could leave the tree."
        )
    for p in parts:
        if p.lower() in FORBIDDEN_DIRS:
            raise UnsafeDiffError(
                f"Refusing the diff: path {path!r} writes into version-control metadata "
                f"({p}). Diffs may not touch .git or .hg."
            )
    return "/".join(p for p in path.split("/") if p not in ("", "."))


def check_patch(patch: Patch, limits: DiffLimits) -> None:
    """Refuse unsafe patches before anything is computed."""
    if len(patch.files) > limits.max_files:
        raise UnsafeDiffError(
            f"Refusing the diff: it touches {len(patch.files)} files, over the limit of "
            f"{limits.max_files} (DiffLimits.max_files)."
        )
    for fp in patch.files:
        for p in (fp.old_path, fp.new_path):
            if p is not None:
                check_path(p)
        if fp.binary:
            raise UnsafeDiffError(
                f"Refusing the diff: {fp.path} is a binary change (GIT binary patch / Binary "
                "files … differ); only text diffs are applied."
            )
        for mode in (fp.old_mode, fp.new_mode):
            if mode in _UNSAFE_MODES:
                raise UnsafeDiffError(
                    f"Refusing the diff: {fp.path} has mode {mode}, {_UNSAFE_MODES[mode]}; "
                    "only regular files are written."
                )
        for h in fp.hunks:
            if any("\x00" in text for _, text in h.lines):
                raise UnsafeDiffError(
                    f"Refusing the diff: a hunk for {fp.path} holds NUL bytes (binary content)."
                )


def _decode(path: str, data: bytes, limits: DiffLimits) -> str:
    if len(data) > limits.max_file_bytes:
        raise UnsafeDiffError(
            f"Refusing the diff: {path} is {len(data)} bytes, over the limit of "
            f"{limits.max_file_bytes} (DiffLimits.max_file_bytes)."
        )
    if b"\x00" in data:
        raise UnsafeDiffError(f"Refusing the diff: {path} is a binary file (NUL bytes).")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeDiffError(
            f"Refusing the diff: {path} is not UTF-8 text; only text files are patched."
        ) from None


def norm_text(text: str) -> str:
    """Text with line ends and trailing whitespace normalized, for "same content" checks."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def _to_bytes(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode("utf-8", "surrogateescape")


def apply_hunks(
    text: str,
    fp: FilePatch,
    *,
    lenient: bool,
    config: LadderConfig = DEFAULT_LADDER,
    deadline: float | None = None,
) -> tuple[str, list[HunkResult]]:
    """Apply one file's hunks to its text; failed hunks are reported, not raised. Past
    ``deadline`` (``time.monotonic()``) it raises :class:`DiffTimeoutError`."""
    lines = split_lines(text)
    index = FileIndex(lines) if lenient else None
    results: list[HunkResult] = []
    delta = drift = floor = 0
    for idx, h in enumerate(fp.hunks):
        if deadline is not None and time.monotonic() > deadline:
            raise DiffTimeoutError(
                f"Applying the diff took too long: {fp.new_path or fp.old_path} was at hunk "
                f"{idx + 1} of {len(fp.hunks)} when the time limit ran out. Send a smaller diff, "
                "or one with line numbers in its @@ headers."
            )
        expected = None
        if h.old_start is not None:
            base = h.old_start - 1 if h.old_lines else h.old_start
            expected = base + delta + drift
        try:
            pl = place_hunk(
                lines, h, expected, lenient=lenient, floor=floor, config=config, index=index
            )
        except HunkFailed as exc:
            results.append(HunkResult(idx, None, 0, str(exc)))
            continue
        if index is not None:
            index.splice(pl.start, pl.end, pl.lines)
        else:
            lines[pl.start : pl.end] = pl.lines
        delta += len(pl.lines) - (pl.end - pl.start)
        if expected is not None:
            drift += pl.offset
        floor = pl.start + len(pl.lines)
        results.append(HunkResult(idx, pl.rung, pl.offset, None))
    eol = "\r\n" if any(x.endswith("\r\n") for x in lines[:50]) else "\n"
    for i in range(len(lines) - 1):
        if not lines[i].endswith("\n"):
            lines[i] += eol
    return "".join(lines), results


@dataclass
class _Plan:
    """What an applied patch writes: path -> new bytes (None = delete), and new modes."""

    writes: dict[str, bytes | None]
    modes: dict[str, str]


def _apply_map(
    files: dict[str, bytes],
    patch: Patch,
    lenient: bool,
    limits: DiffLimits,
    config: LadderConfig,
) -> tuple[dict[str, bytes], ApplyResult, _Plan]:
    state = dict(files)
    deadline = time.monotonic() + limits.max_seconds if limits.max_seconds else None
    results: list[FileResult] = []
    modes: dict[str, str] = {}
    for fp in patch.files:
        old = check_path(fp.old_path) if fp.old_path is not None else None
        new = check_path(fp.new_path) if fp.new_path is not None else None
        path = new if new is not None else old
        assert path is not None
        res = FileResult(path=path, status="modified", old_path=old if old != new else None)
        results.append(res)
        if old is None:
            res.status = "added"
            base = ""
            if path in state:
                existing = _decode(path, state[path], limits)
                created, _ = apply_hunks("", fp, lenient=lenient, config=config)
                if not (lenient and norm_text(created) == norm_text(existing)):
                    res.status, res.error = "failed", "new file already exists"
                    continue
                res.status = "modified"  # leniently: the same file was already created
                base = existing
                fp = FilePatch(old_path=path, new_path=path)
        elif old not in state:
            only_adds = all(not h.old_lines for h in fp.hunks) and fp.hunks
            if lenient and new is not None and only_adds and old == new:
                res.status, base = "added", ""
            else:
                res.status, res.error = "failed", f"{old} does not exist"
                continue
        else:
            base = _decode(old, state[old], limits)
        if new is not None and old is not None and new != old and new in state:
            res.status, res.error = "failed", f"{new} already exists (rename/copy target)"
            continue
        text, res.hunks = apply_hunks(base, fp, lenient=lenient, config=config, deadline=deadline)
        if any(h.rung is None for h in res.hunks):
            res.status, res.error = "failed", "hunk(s) did not apply"
            continue
        if new is None:
            if text.strip() and (fp.hunks or not lenient):
                res.status = "failed"
                res.error = "the file is not empty after removing the deleted lines"
                continue
            res.status = "deleted"
            state.pop(old or path, None)
            continue
        data = text.encode("utf-8", "surrogateescape")
        if len(data) > limits.max_file_bytes:
            raise UnsafeDiffError(
                f"Refusing the diff: {new} would be {len(data)} bytes, over the limit of "
                f"{limits.max_file_bytes} (DiffLimits.max_file_bytes)."
            )
        if old is not None and old != new:
            res.status = "copied" if fp.is_copy else "renamed"
            if not fp.is_copy:
                state.pop(old, None)
        state[new] = data
        if fp.new_mode:
            modes[new] = fp.new_mode
    ok = all(r.status != "failed" for r in results)
    changed = sorted(
        p for p in set(files) | set(state) if files.get(p) != state.get(p) or p in modes
    )
    result = ApplyResult(ok=ok, files=results, changed_paths=changed if ok else [], lenient=lenient)
    writes = {p: state.get(p) for p in changed} if ok else {}
    return (state if ok else dict(files)), result, _Plan(writes, modes if ok else {})


def apply_to_files(
    files: Mapping[str, str | bytes],
    patch: Patch | str,
    *,
    lenient: bool = False,
    limits: DiffLimits | None = None,
    config: LadderConfig = DEFAULT_LADDER,
) -> tuple[dict[str, bytes], ApplyResult]:
    """Apply ``patch`` to an in-memory file map. Returns the whole new map (deleted files
    removed; the input unchanged when the patch does not apply) and the result."""
    limits = limits or DiffLimits()
    if isinstance(patch, str):
        patch = parse_patch(patch)
    check_patch(patch, limits)
    state = {k: _to_bytes(v) for k, v in files.items()}
    new, result, _ = _apply_map(state, patch, lenient, limits, config)
    return new, result


# --- directories -----------------------------------------------------------------------------


def _resolve_inside(root: Path, rel: str) -> Path:
    """``root/rel`` with symlinks resolved; refuses paths that resolve outside ``root`` or
    into its VCS metadata."""
    full = root / rel
    real = Path(os.path.realpath(full))
    try:
        inner = real.relative_to(root)
    except ValueError:
        raise UnsafeDiffError(
            f"Refusing the diff: {rel} goes through a symbolic link that points outside the "
            f"tree ({real})."
        ) from None
    if any(p.lower() in FORBIDDEN_DIRS for p in inner.parts):
        raise UnsafeDiffError(
            f"Refusing the diff: {rel} resolves into version-control metadata ({inner})."
        )
    return real


@dataclass
class _Touched:
    """The files a patch names, as found on disk."""

    files: dict[str, bytes]  # contents of those that exist
    real: dict[str, Path]  # every named path, symlinks resolved (checked inside the tree)
    modes: dict[str, int]  # permission bits of those that exist


def _read_touched(root: Path, patch: Patch, limits: DiffLimits) -> _Touched:
    files: dict[str, bytes] = {}
    reals: dict[str, Path] = {}
    modes: dict[str, int] = {}
    for fp in patch.files:
        for p in (fp.old_path, fp.new_path):
            if p is None:
                continue
            rel = check_path(p)
            if rel in reals:
                continue
            real = _resolve_inside(root, rel)
            reals[rel] = real
            try:
                st = real.stat()
            except FileNotFoundError:
                continue
            except NotADirectoryError:
                continue
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeDiffError(f"Refusing the diff: {rel} exists but is not a regular file.")
            if st.st_size > limits.max_file_bytes:
                raise UnsafeDiffError(
                    f"Refusing the diff: {rel} is {st.st_size} bytes, over the limit of "
                    f"{limits.max_file_bytes} (DiffLimits.max_file_bytes)."
                )
            files[rel] = real.read_bytes()
            modes[rel] = stat.S_IMODE(st.st_mode)
    return _Touched(files, reals, modes)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _Writer:
    """Writes files one by one (temp file + rename) and can undo what it did."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.undo: list[tuple[str, Path, bytes | None, int | None]] = []
        self.created_dirs: list[Path] = []
        self.umask = _umask()

    def _mkdirs(self, d: Path) -> None:
        missing = []
        while not d.exists():
            missing.append(d)
            d = d.parent
        for m in reversed(missing):
            m.mkdir()
            self.created_dirs.append(m)

    def write(
        self, real: Path, data: bytes, mode: str | None, old: bytes | None, old_mode: int | None
    ) -> None:
        """Write ``data`` at ``real`` (``old``/``old_mode``: what is there now, for undo)."""
        self._mkdirs(real.parent)
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=".bactrian-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if mode == "100755":
                perm = 0o777 & ~self.umask
            elif mode == "100644" or old_mode is None:
                perm = 0o666 & ~self.umask
            else:
                perm = old_mode
            os.chmod(tmp, perm)
            os.replace(tmp, real)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.undo.append(("write", real, old, old_mode))

    def delete(self, real: Path) -> None:
        old = real.read_bytes()
        old_mode = stat.S_IMODE(real.stat().st_mode)
        real.unlink()
        self.undo.append(("delete", real, old, old_mode))
        d = real.parent
        while d != self.root and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            d = d.parent

    def rollback(self) -> None:
        for _kind, real, old, old_mode in reversed(self.undo):
            try:
                if old is None:
                    real.unlink(missing_ok=True)
                else:
                    real.parent.mkdir(parents=True, exist_ok=True)
                    real.write_bytes(old)
                    if old_mode is not None:
                        os.chmod(real, old_mode)
            except OSError:
                pass
        for d in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()


def apply_patch(
    root: Path,
    patch: Patch | str,
    *,
    lenient: bool = False,
    dry_run: bool = False,
    limits: DiffLimits | None = None,
    config: LadderConfig = DEFAULT_LADDER,
) -> ApplyResult:
    """Apply ``patch`` to the tree at ``root``: all files or none. Unsafe diffs raise
    :class:`UnsafeDiffError`; a failed write midway is undone and raises
    :class:`DiffApplyError`. Nothing is written in a dry run or when any hunk fails."""
    limits = limits or DiffLimits()
    root = Path(os.path.realpath(root))
    if not root.is_dir():
        raise DiffApplyError(f"Cannot apply the diff: {root} is not a directory.")
    if isinstance(patch, str):
        patch = parse_patch(patch)
    check_patch(patch, limits)
    touched = _read_touched(root, patch, limits)
    _, result, plan = _apply_map(touched.files, patch, lenient, limits, config)
    result.dry_run = dry_run
    if not result.ok or dry_run:
        return result
    writer = _Writer(root)
    try:
        for rel, data in sorted(plan.writes.items(), key=lambda kv: kv[1] is not None):
            real = touched.real.get(rel) or _resolve_inside(root, rel)
            if data is None:
                writer.delete(real)
            else:
                old, old_mode = touched.files.get(rel), touched.modes.get(rel)
                writer.write(real, data, plan.modes.get(rel), old, old_mode)
    except OSError as exc:
        writer.rollback()
        raise DiffApplyError(
            f"Writing the diff failed at {exc.filename or '?'}: {exc.strerror or exc}. "
            "Every file already written was restored; fix the tree and retry."
        ) from exc
    return result


def normalize_patch(
    files: Mapping[str, str | bytes],
    patch: Patch | str,
    *,
    lenient: bool = True,
    limits: DiffLimits | None = None,
    config: LadderConfig = DEFAULT_LADDER,
) -> tuple[str, ApplyResult]:
    """Apply ``patch`` to ``files`` in memory and render what it does as a clean git-style
    diff (exact line numbers and counts, the files' own whitespace in context lines): what
    an editor previews and a strict ``git apply`` accepts. The text is empty when the patch
    does not apply (see the result) or changes nothing."""
    new, result = apply_to_files(files, patch, lenient=lenient, limits=limits, config=config)
    if not result.ok:
        return "", result
    touched = set(result.changed_paths)
    old_sub = {p: _to_bytes(v) for p, v in files.items() if p in touched}
    new_sub = {p: v for p, v in new.items() if p in touched}
    return render_diff(old_sub, new_sub), result
