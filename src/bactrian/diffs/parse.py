"""Parse git-style and plain unified diffs over several files.

Accepted: ``diff --git`` headers with extended lines (new/deleted file mode, old/new mode,
similarity index, rename/copy from/to, index), plain ``---``/``+++`` headers (with or without
``a/`` ``b/`` prefixes, with GNU diff timestamps after a tab), ``/dev/null``, C-quoted paths,
``\\ No newline at end of file``, CRLF content, numbered ``@@ -a,b +c,d @@`` hunks and bare
``@@`` hunks (no numbers, as models write them). Text before, between and after file diffs
(commit messages, prose, markdown fences) is skipped, as ``git apply`` skips it.

Hunk bodies are read by their counts when the counts fit the body; when they do not (or are
missing) the body is read by its line prefixes and the hunk is marked ``counts_ok=False`` so
that a strict application refuses it and the lenient ladder's ``recount`` rung takes it.
"""

from __future__ import annotations

import re

from bactrian.diffs.model import FilePatch, Hunk, Patch
from bactrian.errors import DiffParseError

_NUM_HUNK = re.compile(r"^@@+\s*-(\d+)(?:,(\d+))?\s+\+(\d+)(?:,(\d+))?\s*@@+ ?(.*)$")
_EXT_HEADERS = (
    "old mode ",
    "new mode ",
    "deleted file mode ",
    "new file mode ",
    "similarity index ",
    "dissimilarity index ",
    "rename from ",
    "rename to ",
    "rename old ",
    "rename new ",
    "copy from ",
    "copy to ",
    "index ",
)
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only (not on the other characters ``str.splitlines`` breaks at),
    keeping each line's terminator; a last line without ``\\n`` keeps none."""
    if not text:
        return []
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def unquote_path(s: str) -> str:
    """Undo git's C-style quoting of a path (``"a/caf\\303\\251"`` → ``a/café``)."""
    if len(s) < 2 or not (s.startswith('"') and s.endswith('"')):
        return s
    body = s[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif re.match(r"[0-7]{3}", body[i + 1 : i + 4]):
            out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        else:
            out += b"\\"
            i += 1
    return out.decode("utf-8", "surrogateescape")


def _take_quoted(s: str) -> tuple[str, str]:
    """Split a leading C-quoted string off ``s``: (quoted text incl. quotes, rest)."""
    i = 1
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == '"':
            return s[: i + 1], s[i + 1 :]
        i += 1
    raise ValueError("unterminated quote")


def _strip_eol(line: str) -> str:
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    return line


def _header_name(raw: str) -> str | None:
    """The path on a ``---``/``+++`` line (after the marker): unquoted, timestamp dropped."""
    raw = _strip_eol(raw)
    if raw.startswith('"'):
        try:
            quoted, _ = _take_quoted(raw)
            return unquote_path(quoted)
        except ValueError:
            pass
    if "\t" in raw:
        raw = raw.split("\t", 1)[0]
    else:
        raw = raw.rstrip(" ")  # git ends names holding spaces with a tab; these are junk
    if raw == "/dev/null":
        return None
    return raw


def _strip_prefixes(old: str | None, new: str | None) -> tuple[str | None, str | None]:
    """Drop git's ``a/`` and ``b/`` prefixes when the header uses them."""
    old_pref = old is None or old.startswith("a/")
    new_pref = new is None or new.startswith("b/")
    if old_pref and new_pref and not (old is None and new is None):
        old = old[2:] if old is not None else None
        new = new[2:] if new is not None else None
    return old, new


def _git_header_names(rest: str) -> tuple[str | None, str | None]:
    """Paths on a ``diff --git`` line (``rest`` = what follows ``diff --git ``)."""
    rest = _strip_eol(rest)
    try:
        if rest.startswith('"'):
            q, tail = _take_quoted(rest)
            a = unquote_path(q)
            tail = tail.strip()
            b = unquote_path(tail) if tail.startswith('"') else tail
            return a, b
        if rest.endswith('"') and ' "' in rest:
            idx = rest.index(' "')
            return rest[:idx], unquote_path(rest[idx + 1 :])
    except ValueError:
        return None, None
    candidates = [m.start() for m in re.finditer(r" b/", rest)]
    for idx in candidates:
        a, b = rest[:idx], rest[idx + 1 :]
        if a[2:] == b[2:]:
            return a, b
    if candidates:
        idx = candidates[0]
        return rest[:idx], rest[idx + 1 :]
    parts = rest.split(" ")
    if len(parts) == 2:
        return parts[0], parts[1]
    return None, None


def _is_file_header(lines: list[str], j: int) -> bool:
    line = lines[j]
    if line.startswith("diff --git ") or line.startswith("diff -"):
        return True
    return line.startswith("--- ") and j + 1 < len(lines) and lines[j + 1].startswith("+++ ")


def _is_signature(line: str) -> bool:
    return _strip_eol(line) == "-- "


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = split_lines(text)
        self.files: list[FilePatch] = []

    def error(self, j: int, msg: str) -> DiffParseError:
        shown = _strip_eol(self.lines[j])[:80] if j < len(self.lines) else "end of text"
        return DiffParseError(f"line {j + 1}: {msg} (found: {shown!r})")

    def parse(self) -> Patch:
        lines = self.lines
        cur: FilePatch | None = None
        cur_has_header_paths = False  # ---/+++ already seen for cur
        j = 0
        while j < len(lines):
            line = lines[j]
            if line.startswith("diff --git "):
                cur = self._git_header(j)
                self.files.append(cur)
                cur_has_header_paths = False
                j += 1
                while j < len(lines) and lines[j].startswith(_EXT_HEADERS):
                    self._ext_header(cur, lines[j])
                    j += 1
                continue
            if line.startswith("--- "):
                if j + 1 >= len(lines) or not lines[j + 1].startswith("+++ "):
                    if cur is not None and cur.git_header and not cur.hunks:
                        raise self.error(j + 1, "expected a '+++ ' line after the '--- ' line")
                    j += 1
                    continue
                old = _header_name(line[4:])
                new = _header_name(lines[j + 1][4:])
                old, new = _strip_prefixes(old, new)
                if (
                    cur is not None
                    and cur.git_header
                    and not cur.hunks
                    and not cur_has_header_paths
                ):
                    if not (cur.is_rename or cur.is_copy):
                        cur.old_path, cur.new_path = old, new
                else:
                    if old is None and new is None:
                        raise self.error(j, "both '---' and '+++' name /dev/null")
                    cur = FilePatch(old_path=old, new_path=new)
                    self.files.append(cur)
                    if old is not None and new is not None and old != new:
                        # plain diffs do not rename: the new name is the file to patch
                        cur.old_path = new
                cur_has_header_paths = True
                j += 2
                if (j >= len(lines) or not lines[j].startswith("@@")) and not cur.git_header:
                    raise self.error(j, "expected an '@@' hunk header after the '+++' line")
                continue
            if line.startswith("@@"):
                if cur is None:
                    raise self.error(
                        j, "expected a 'diff --git' or '---'/'+++' file header before this hunk"
                    )
                hunk, j = self._hunk(j)
                cur.hunks.append(hunk)
                continue
            if cur is not None and (
                line.startswith("GIT binary patch") or line.startswith("Binary files ")
            ):
                cur.binary = True
            j += 1
        if not self.files:
            raise DiffParseError(
                "line 1: expected a 'diff --git' or '---'/'+++' file header; the text holds no "
                "diff. Give a unified diff (git diff format)."
            )
        for fp in self.files:
            if fp.old_path is None and fp.new_path is None:
                raise DiffParseError("a file diff names no path; expected 'a/PATH b/PATH'")
        return Patch(self.files)

    def _git_header(self, j: int) -> FilePatch:
        a, b = _git_header_names(self.lines[j][len("diff --git ") :])
        if a is None or b is None:
            raise self.error(j, "expected 'diff --git a/PATH b/PATH'")
        a, b = _strip_prefixes(a, b)
        return FilePatch(old_path=a, new_path=b, git_header=True)

    def _ext_header(self, fp: FilePatch, line: str) -> None:
        text = _strip_eol(line)
        if text.startswith("new file mode "):
            fp.old_path = None
            fp.new_mode = text.rsplit(" ", 1)[1]
        elif text.startswith("deleted file mode "):
            fp.new_path = None
            fp.old_mode = text.rsplit(" ", 1)[1]
        elif text.startswith("old mode "):
            fp.old_mode = text.rsplit(" ", 1)[1]
        elif text.startswith("new mode "):
            fp.new_mode = text.rsplit(" ", 1)[1]
        elif text.startswith(("rename from ", "rename old ")):
            fp.is_rename = True
            fp.old_path = unquote_path(text.split(" ", 2)[2])
        elif text.startswith(("rename to ", "rename new ")):
            fp.is_rename = True
            fp.new_path = unquote_path(text.split(" ", 2)[2])
        elif text.startswith("copy from "):
            fp.is_copy = True
            fp.old_path = unquote_path(text.split(" ", 2)[2])
        elif text.startswith("copy to "):
            fp.is_copy = True
            fp.new_path = unquote_path(text.split(" ", 2)[2])
        elif text.startswith("similarity index "):
            digits = text.split(" ")[2].rstrip("%")
            fp.similarity = int(digits) if digits.isdigit() else None

    def _hunk(self, j: int) -> tuple[Hunk, int]:
        header = _strip_eol(self.lines[j])
        m = _NUM_HUNK.match(header)
        if m:
            os_, oc, ns, nc = m.group(1), m.group(2), m.group(3), m.group(4)
            hunk = Hunk(
                old_start=int(os_),
                old_count=int(oc) if oc is not None else 1,
                new_start=int(ns),
                new_count=int(nc) if nc is not None else 1,
                section=m.group(5).strip(),
                header_line=j + 1,
            )
            end = self._counted(hunk, j + 1)
            if end is not None:
                return hunk, end
            hunk.counts_ok = False
        else:
            section = header.strip("@").strip()
            hunk = Hunk(None, None, None, None, section=section, header_line=j + 1)
            hunk.counts_ok = False
        end = self._free(hunk, j + 1)
        if not hunk.lines:
            raise self.error(j + 1, "expected hunk lines starting with ' ', '-' or '+'")
        return hunk, end

    def _counted(self, hunk: Hunk, j: int) -> int | None:
        """Read exactly the counted lines; None when they do not fit the body."""
        lines = self.lines
        assert hunk.old_count is not None and hunk.new_count is not None
        body: list[tuple[str, str]] = []
        o = n = 0
        while o < hunk.old_count or n < hunk.new_count:
            if j >= len(lines):
                return None
            line = lines[j]
            if line in ("\n", "\r\n"):
                tag, text = " ", line
            elif line[0] in " -+":
                tag, text = line[0], line[1:]
            elif line[0] == "\\" and body:
                body[-1] = (body[-1][0], _drop_newline(body[-1][1]))
                j += 1
                continue
            else:
                return None
            if tag == "-" and _is_file_header(lines, j):
                return None
            o += tag != "+"
            n += tag != "-"
            if o > hunk.old_count or n > hunk.new_count:
                return None
            body.append((tag, text))
            j += 1
        while j < len(lines) and lines[j].startswith("\\") and body:
            body[-1] = (body[-1][0], _drop_newline(body[-1][1]))
            j += 1
        if j < len(lines):
            nxt = lines[j]
            if (
                nxt[:1] in (" ", "+", "-")
                and not _is_file_header(lines, j)
                and not _is_signature(nxt)
            ):
                return None  # the body goes on past its counts: counts are wrong
        hunk.lines = body
        return j

    def _free(self, hunk: Hunk, j: int) -> int:
        """Read a hunk body by its line prefixes (no or wrong counts)."""
        lines = self.lines
        body: list[tuple[str, str]] = []
        blank: list[bool] = []  # entry came from an empty line (may be trailing junk)
        while j < len(lines):
            line = lines[j]
            if line.startswith("@@") or _is_file_header(lines, j) or _is_signature(line):
                break
            if line[0] in " -+":
                body.append((line[0], line[1:]))
                blank.append(False)
            elif line[0] == "\\":
                if body:
                    body[-1] = (body[-1][0], _drop_newline(body[-1][1]))
            elif line.strip() == "":
                body.append((" ", line if line.endswith("\n") else "\n"))
                blank.append(True)
            else:
                break
            j += 1
        while blank and blank[-1]:
            blank.pop()
            body.pop()
            j -= 1
        hunk.lines = body
        return j


def _drop_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def parse_patch(text: str) -> Patch:
    """Parse a (multi-file) unified diff. Raises :class:`~bactrian.errors.DiffParseError`
    naming the line and what was expected when the text holds no usable diff."""
    return _Parser(text).parse()
