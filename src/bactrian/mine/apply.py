"""Strict application of the git-style text diffs the miner renders, to an in-memory file map or
a directory the miner owns (materialised bases). User-facing diff handling — lenient apply,
path safety for untrusted diffs — is ``bactrian.diffs``' job."""

from __future__ import annotations

import re
from pathlib import Path

from bactrian.errors import MiningError
from bactrian.mine.textdiff import FileMap, split_files

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _apply_file(old: bytes | None, text: str, path: str) -> bytes | None:
    src = old.decode().splitlines(keepends=True) if old is not None else []
    out: list[str] = []
    pos = 0
    lines = text.splitlines(keepends=True)
    deleted = any(line.startswith("deleted file mode") for line in lines)
    i = 0
    while i < len(lines):
        m = _HUNK.match(lines[i])
        if not m:
            i += 1
            continue
        start = int(m.group(1))
        count = int(m.group(2)) if m.group(2) is not None else 1
        at = start - 1 if count else start
        if at < pos or at > len(src):
            raise MiningError(f"{path}: hunk at line {start} does not fit the file")
        out.extend(src[pos:at])
        pos = at
        i += 1
        while i < len(lines) and not lines[i].startswith("@@"):
            line = lines[i]
            tag, body = line[:1], line[1:]
            nxt_no_nl = i + 1 < len(lines) and lines[i + 1].startswith("\\")
            if nxt_no_nl:
                body = body.rstrip("\n")
            if tag in (" ", "-"):
                if pos >= len(src) or src[pos] != body:
                    raise MiningError(
                        f"{path}: line {pos + 1} does not match the diff "
                        f"(expected {body!r}, found {src[pos] if pos < len(src) else 'EOF'!r})"
                    )
                pos += 1
                if tag == " ":
                    out.append(body)
            elif tag == "+":
                out.append(body)
            i += 2 if nxt_no_nl else 1
    out.extend(src[pos:])
    if deleted:
        return None
    return "".join(out).encode()


def apply_to_map(files: FileMap, diff: str, only: set[str] | None = None) -> FileMap:
    """``files`` with ``diff`` applied (a new dict). ``only`` limits which files are patched."""
    out = dict(files)
    for f in split_files(diff):
        if only is not None and f.path not in only:
            continue
        if f.binary:
            raise MiningError(f"{f.path}: cannot apply a binary diff")
        old = out.get(f.path)
        if old is None and not f.new_file:
            raise MiningError(f"{f.path}: the diff changes a file that does not exist")
        new = _apply_file(None if f.new_file else old, f.text, f.path)
        if new is None:
            out.pop(f.path, None)
        else:
            out[f.path] = new
    return out


def apply_to_dir(root: Path, diff: str) -> list[str]:
    """Apply ``diff`` to the files under ``root`` (a tree the miner created); returns the paths
    written. Paths escaping ``root`` are refused."""
    root = root.resolve()
    files: FileMap = {}
    for f in split_files(diff):
        target = (root / f.path).resolve()
        if not target.is_relative_to(root):
            raise MiningError(f"refusing to write {f.path}: outside {root}")
        if target.is_file():
            files[f.path] = target.read_bytes()
    new = apply_to_map(files, diff)
    written = []
    for f in split_files(diff):
        target = root / f.path
        if f.path in new:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(new[f.path])
        else:
            target.unlink(missing_ok=True)
        written.append(f.path)
    return written
