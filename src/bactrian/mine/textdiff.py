"""Small, self-contained unified-diff helpers the miner needs: render git-style multi-file diffs
from two file maps, split a diff text into per-file sections, count lines, and hash a diff
after normalisation (for near-duplicate detection).

Rendering here (not ``bactrian.diffs``) keeps mined diffs byte-identical whatever the source
(snapshot store, git, Mercurial); applying and checking diffs is ``bactrian.diffs``' job.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field

FileMap = dict[str, bytes]


def is_binary(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def render_file(path: str, old: bytes | None, new: bytes | None, context: int = 3) -> str:
    """One file's git-style diff section (``diff --git`` header, new/deleted file modes)."""
    if old == new:
        return ""
    head = [f"diff --git a/{path} b/{path}\n"]
    if old is None:
        head.append("new file mode 100644\n")
    elif new is None:
        head.append("deleted file mode 100644\n")
    if (old is not None and is_binary(old)) or (new is not None and is_binary(new)):
        head.append(
            f"Binary files {'a/' + path if old is not None else '/dev/null'} and "
            f"{'b/' + path if new is not None else '/dev/null'} differ\n"
        )
        return "".join(head)
    a = _lines(old.decode()) if old is not None else []
    b = _lines(new.decode()) if new is not None else []
    body = list(
        difflib.unified_diff(
            a,
            b,
            fromfile=f"a/{path}" if old is not None else "/dev/null",
            tofile=f"b/{path}" if new is not None else "/dev/null",
            n=context,
        )
    )
    if not body:  # creating or deleting an empty file: header only, as git writes it
        return "".join(head) if old is None or new is None else ""
    body[0] = body[0].rstrip() + "\n"
    body[1] = body[1].rstrip() + "\n"
    return "".join(head) + "".join(_fix_hunk_header(line) for line in body)


def _fix_hunk_header(line: str) -> str:
    # difflib writes "@@ -0,0 +1,3 @@" like git; nothing to change but keep the hook explicit.
    return line


def render(old: FileMap, new: FileMap, paths: list[str] | None = None, context: int = 3) -> str:
    """A multi-file diff turning ``old`` into ``new`` (files sorted by path)."""
    keys = sorted(set(old) | set(new)) if paths is None else sorted(paths)
    return "".join(render_file(p, old.get(p), new.get(p), context) for p in keys)


@dataclass
class FileDiff:
    path: str
    text: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    binary: bool = False
    new_file: bool = False
    deleted: bool = False


_HEADER = re.compile(r"^diff --git a/(.*) b/(.*)$")


def split_files(diff: str) -> list[FileDiff]:
    """The per-file sections of a git-style diff, with their added and removed lines."""
    out: list[FileDiff] = []
    cur: FileDiff | None = None
    chunk: list[str] = []
    for line in diff.splitlines(keepends=True):
        m = _HEADER.match(line.rstrip("\n"))
        if m:
            if cur is not None:
                cur.text = "".join(chunk)
                out.append(cur)
            cur = FileDiff(path=m.group(2), text="")
            chunk = [line]
            continue
        if cur is None:
            continue
        chunk.append(line)
        if line.startswith("Binary files "):
            cur.binary = True
        elif line.startswith("new file mode"):
            cur.new_file = True
        elif line.startswith("deleted file mode"):
            cur.deleted = True
        elif line.startswith("+") and not line.startswith("+++ "):
            cur.added.append(line[1:].rstrip("\n"))
        elif line.startswith("-") and not line.startswith("--- "):
            cur.removed.append(line[1:].rstrip("\n"))
    if cur is not None:
        cur.text = "".join(chunk)
        out.append(cur)
    return out


def diff_stats(diff: str) -> dict[str, int]:
    files = split_files(diff)
    added = sum(len(f.added) for f in files)
    removed = sum(len(f.removed) for f in files)
    return {"files": len(files), "added": added, "removed": removed, "changed": added + removed}


def normalised_hash(diff: str) -> str:
    """Hash of a diff's changes with whitespace collapsed and hunk positions/context dropped,
    so the same edit at another line, or re-indented, hashes the same (near-duplicates)."""
    parts: list[str] = []
    for f in sorted(split_files(diff), key=lambda f: f.path):
        parts.append("F " + f.path.rsplit("/", 1)[-1])
        parts += ["- " + " ".join(x.split()) for x in f.removed if x.strip()]
        parts += ["+ " + " ".join(x.split()) for x in f.added if x.strip()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def exact_hash(diff: str) -> str:
    return hashlib.sha256(diff.encode()).hexdigest()[:16]
