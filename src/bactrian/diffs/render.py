"""Render git-style multi-file unified diffs: between two file maps, two directory trees, or
from a parsed :class:`~bactrian.diffs.model.Patch`.

The output is what ``git diff`` would write (``diff --git`` headers, ``new file mode``,
``deleted file mode``, mode changes, renames, C-quoted unusual paths, a tab after names with
spaces, ``\\ No newline at end of file``), in sorted path order, so ``git apply`` and
``patch -p1`` accept it byte for byte. Binary files (NUL bytes or not UTF-8) are rendered as
git does without ``--binary``: ``Binary files a/x and b/x differ``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from bactrian.diffs.lcs import grouped_opcodes
from bactrian.diffs.model import FilePatch, Hunk, Patch
from bactrian.diffs.parse import split_lines

VCS_DIRS = frozenset({".git", ".hg", ".svn", "_darcs", ".bzr"})
_QUOTE = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}


def quote_path(path: str) -> str:
    """Quote a path as git does when it holds control characters, quotes, backslashes or
    non-ASCII bytes; return it unchanged otherwise."""
    raw = path.encode("utf-8", "surrogateescape")
    out = []
    quoted = False
    for byte in raw:
        if byte in _QUOTE:
            out.append("\\" + _QUOTE[byte])
            quoted = True
        elif byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:03o}")
            quoted = True
        else:
            out.append(chr(byte))
    return '"' + "".join(out) + '"' if quoted else path


def _name(prefix: str, path: str) -> str:
    return quote_path(prefix + path)


def _tab(path: str) -> str:
    return "\t" if " " in path and quote_path(path) == path else ""


def as_text(content: bytes | str | None) -> str | None:
    """File content as text, or None for binary content (NUL bytes or not UTF-8)."""
    if content is None:
        return None
    if isinstance(content, str):
        return None if "\x00" in content else content
    if b"\x00" in content:
        return None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _range(start: int, stop: int) -> str:
    beginning = start + 1
    length = stop - start
    if length == 1:
        return str(beginning)
    if not length:
        beginning -= 1
    return f"{beginning},{length}"


def _body_line(tag: str, text: str) -> str:
    if text.endswith("\n"):
        return tag + text
    return tag + text + "\n\\ No newline at end of file\n"


def diff_hunks(a: list[str], b: list[str], context: int = 3) -> list[Hunk]:
    """The hunks turning lines ``a`` into lines ``b`` (lines keep their terminators)."""
    hunks = []
    for group in grouped_opcodes(a, b, context):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        lines: list[tuple[str, str]] = []
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                lines += [(" ", t) for t in a[a1:a2]]
                continue
            lines += [("-", t) for t in a[a1:a2]]
            lines += [("+", t) for t in b[b1:b2]]
        old_start = i1 + 1 if i2 > i1 else i1
        new_start = j1 + 1 if j2 > j1 else j1
        hunks.append(Hunk(old_start, i2 - i1, new_start, j2 - j1, lines))
    return hunks


def render_hunk(h: Hunk) -> str:
    if h.old_start is None or h.new_start is None:
        head = "@@ @@" if not h.section else f"@@ {h.section} @@"
    elif not h.counts_ok:  # keep the header as it was written: a strict apply refuses it
        head = f"@@ -{h.old_start},{h.old_count} +{h.new_start},{h.new_count} @@"
        if h.section:
            head += " " + h.section
    else:
        olen = len(h.old_lines)
        nlen = len(h.new_lines)
        o0 = h.old_start - 1 if olen else h.old_start
        n0 = h.new_start - 1 if nlen else h.new_start
        head = f"@@ -{_range(o0, o0 + olen)} +{_range(n0, n0 + nlen)} @@"
        if h.section:
            head += " " + h.section
    return head + "\n" + "".join(_body_line(tag, text) for tag, text in h.lines)


def render_file_patch(fp: FilePatch) -> str:
    old = fp.old_path if fp.old_path is not None else fp.new_path
    new = fp.new_path if fp.new_path is not None else fp.old_path
    assert old is not None and new is not None
    out = [f"diff --git {_name('a/', old)} {_name('b/', new)}\n"]
    if fp.is_new:
        out.append(f"new file mode {fp.new_mode or '100644'}\n")
    elif fp.is_delete:
        out.append(f"deleted file mode {fp.old_mode or '100644'}\n")
    elif fp.old_mode and fp.new_mode and fp.old_mode != fp.new_mode:
        out.append(f"old mode {fp.old_mode}\nnew mode {fp.new_mode}\n")
    if fp.is_rename or fp.is_copy:
        kind = "rename" if fp.is_rename else "copy"
        if fp.similarity is not None:
            out.append(f"similarity index {fp.similarity}%\n")
        out.append(f"{kind} from {quote_path(old)}\n{kind} to {quote_path(new)}\n")
    a_label = "/dev/null" if fp.is_new else _name("a/", old)
    b_label = "/dev/null" if fp.is_delete else _name("b/", new)
    if fp.binary:
        out.append(f"Binary files {a_label} and {b_label} differ\n")
        return "".join(out)
    if fp.hunks:
        out.append(f"--- {a_label}{'' if fp.is_new else _tab(old)}\n")
        out.append(f"+++ {b_label}{'' if fp.is_delete else _tab(new)}\n")
        out += [render_hunk(h) for h in fp.hunks]
    return "".join(out)


def render_patch(patch: Patch) -> str:
    """A parsed (or built) patch back as git-style diff text."""
    return "".join(render_file_patch(fp) for fp in patch.files)


def _mode(modes: Mapping[str, int] | None, path: str) -> str:
    if modes and modes.get(path, 0) & 0o111:
        return "100755"
    return "100644"


def diff_files(
    old: Mapping[str, bytes | str],
    new: Mapping[str, bytes | str],
    *,
    context: int = 3,
    old_modes: Mapping[str, int] | None = None,
    new_modes: Mapping[str, int] | None = None,
    detect_renames: bool = False,
) -> Patch:
    """The :class:`Patch` turning file map ``old`` into ``new`` (sorted by path)."""
    paths = sorted(set(old) | set(new))
    renames: dict[str, str] = {}  # new path -> old path
    if detect_renames:
        gone = {p: old[p] for p in paths if p not in new}
        by_content: dict[bytes, list[str]] = {}
        for p, c in gone.items():
            key = c.encode("utf-8", "surrogateescape") if isinstance(c, str) else c
            by_content.setdefault(key, []).append(p)
        for p in paths:
            if p in new and p not in old:
                c = new[p]
                key = c.encode("utf-8", "surrogateescape") if isinstance(c, str) else c
                if by_content.get(key):
                    renames[p] = by_content[key].pop(0)
    renamed_from = set(renames.values())
    files = []
    for p in paths:
        if p in renamed_from:
            continue
        o = old.get(p)
        n = new.get(p)
        if p in renames:
            src = renames[p]
            fp = FilePatch(src, p, is_rename=True, similarity=100, git_header=True)
            fp.old_mode, fp.new_mode = _mode(old_modes, src), _mode(new_modes, p)
            files.append(fp)
            continue
        om = _mode(old_modes, p) if o is not None else None
        nm = _mode(new_modes, p) if n is not None else None
        if o is not None and n is not None:
            same = (o if isinstance(o, bytes) else o.encode("utf-8", "surrogateescape")) == (
                n if isinstance(n, bytes) else n.encode("utf-8", "surrogateescape")
            )
            if same and om == nm:
                continue
        fp = FilePatch(p if o is not None else None, p if n is not None else None, git_header=True)
        fp.old_mode, fp.new_mode = om, nm
        ot, nt = as_text(o), as_text(n)
        if (o is not None and ot is None) or (n is not None and nt is None):
            fp.binary = True
        else:
            fp.hunks = diff_hunks(split_lines(ot or ""), split_lines(nt or ""), context)
        files.append(fp)
    return Patch(files)


def render_diff(
    old: Mapping[str, bytes | str],
    new: Mapping[str, bytes | str],
    *,
    context: int = 3,
    detect_renames: bool = False,
) -> str:
    """A git-style multi-file unified diff turning file map ``old`` into ``new``."""
    return render_patch(diff_files(old, new, context=context, detect_renames=detect_renames))


def read_tree(root: Path) -> tuple[dict[str, bytes], dict[str, int]]:
    """All regular files under ``root`` (VCS dirs and symlinks skipped): contents and modes,
    keyed by ``/``-separated relative path."""
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in VCS_DIRS)
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            with open(full, "rb") as fh:
                files[rel] = fh.read()
            modes[rel] = st.st_mode
    return files, modes


def render_tree_diff(
    old_dir: Path, new_dir: Path, *, context: int = 3, detect_renames: bool = False
) -> str:
    """A git-style diff turning directory ``old_dir`` into ``new_dir`` (regular files only;
    ``.git``/``.hg`` and other VCS dirs are skipped; executable bits become modes)."""
    old, old_modes = read_tree(Path(old_dir))
    new, new_modes = read_tree(Path(new_dir))
    patch = diff_files(
        old,
        new,
        context=context,
        old_modes=old_modes,
        new_modes=new_modes,
        detect_renames=detect_renames,
    )
    return render_patch(patch)
