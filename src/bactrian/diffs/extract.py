"""Model output → change set.

Models answer in one of three edit formats, often wrapped in markdown and prose:

* a unified diff (in a fenced block labelled ``diff``/``patch``, or unfenced in prose);
* search/replace blocks (``<<<<<<< SEARCH`` / ``=======`` / ``>>>>>>> REPLACE``), each after
  a line naming the file (aider's format);
* whole files: a fenced block labelled with a path (```` ```ocaml src/foo.ml ````, or a line
  ``src/foo.ml`` / ``**src/foo.ml**`` / ``File: src/foo.ml`` just before the fence).

All three become one :class:`ChangeSet` holding a :class:`~bactrian.diffs.model.Patch`; the
search/replace and whole-file formats need the current file contents to become a diff.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bactrian.diffs.ladder import norm
from bactrian.diffs.model import Patch, touched_paths
from bactrian.diffs.parse import parse_patch, split_lines
from bactrian.diffs.render import diff_files, render_patch
from bactrian.errors import DiffApplyError, DiffParseError

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*(.*?)\s*$")
_SEARCH = re.compile(r"^\s*<{5,9} ?SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9} ?REPLACE\s*$")
_PATHLIKE = re.compile(r"^[\w.@+\-]+(/[\w.@+\-]+)*$")
_DIFF_LANGS = {"diff", "patch", "udiff", "git"}


@dataclass
class ChangeSet:
    """Edits pulled out of a model's output, as one patch. ``formats`` names what was found
    (``diff``, ``search-replace``, ``whole-file``); ``warnings`` what was skipped."""

    patch: Patch = field(default_factory=Patch)
    formats: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_patch(self) -> Patch:
        return self.patch

    def render(self) -> str:
        return render_patch(self.patch)

    def paths(self) -> list[str]:
        return touched_paths(self.patch)

    def __bool__(self) -> bool:
        return bool(self.patch.files)


@dataclass
class _Block:
    info: str
    body: list[str]
    label: str | None  # the non-blank line just before the fence
    start: int


def _blocks(lines: list[str]) -> list[_Block]:
    out = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(1), m.group(2)
        j = i + 1
        body = []
        while j < len(lines):
            m2 = _FENCE.match(lines[j])
            if m2 and m2.group(1).startswith(fence[0] * 3) and not m2.group(2):
                break
            body.append(lines[j])
            j += 1
        label = None
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        if k >= 0:
            label = lines[k].strip()
        out.append(_Block(info, body, label, i))
        i = j + 1
    return out


def _clean_label(text: str | None) -> str | None:
    if not text:
        return None
    t = text.strip().strip("*_`#: ").strip()
    for prefix in ("File:", "file:", "Path:", "path:", "Filename:", "filename:"):
        if t.startswith(prefix):
            t = t[len(prefix) :].strip().strip("*_`")
    t = t.rstrip(":").strip("`*_ ")
    if _PATHLIKE.match(t) and ("." in t or "/" in t) and not t.endswith("."):
        return t
    return None


def _info_path(info: str) -> str | None:
    for tok in re.split(r"[\s:=]+", info):
        tok = tok.strip("`\"'")
        if tok and ("/" in tok or re.search(r"\.\w+$", tok)) and _PATHLIKE.match(tok):
            return tok
    return None


def _looks_like_diff(body: list[str]) -> bool:
    text = "".join(body)
    return (
        "diff --git " in text
        or ("\n+++ " in "\n" + text and "\n--- " in "\n" + text)
        or any(line.startswith("@@") for line in body)
    )


def _has_file_header(body: list[str]) -> bool:
    return any(
        line.startswith("diff --git ")
        or (line.startswith("--- ") and k + 1 < len(body) and body[k + 1].startswith("+++ "))
        for k, line in enumerate(body)
    )


def _replace_once(content: str, search: str, replace: str, path: str) -> str:
    if not search.strip():
        return content + replace if content else replace
    count = content.count(search)
    if count == 1:
        return content.replace(search, replace, 1)
    if count > 1:
        raise DiffApplyError(
            f"The SEARCH block for {path} occurs {count} times; add lines to make it unique."
        )
    # ignore whitespace-only differences, line by line
    lines = split_lines(content)
    keys = [norm(x) for x in lines]
    want = [norm(x) for x in split_lines(search)]
    while want and not want[-1]:
        want.pop()
    hits = [p for p in range(len(lines) - len(want) + 1) if keys[p : p + len(want)] == want]
    if len(hits) != 1:
        why = "is not in the file" if not hits else f"occurs {len(hits)} times"
        raise DiffApplyError(
            f"The SEARCH block for {path} {why}; it must match the current file exactly once."
        )
    p = hits[0]
    rep = split_lines(replace)
    if rep and not rep[-1].endswith("\n") and p + len(want) < len(lines):
        rep[-1] += "\n"
    return "".join(lines[:p] + rep + lines[p + len(want) :])


def _search_replace(
    lines: list[str], blocks: list[_Block]
) -> tuple[list[tuple[str, str, str]], set[int]]:
    """(path, search, replace) edits and the line numbers they used."""
    edits: list[tuple[str, str, str]] = []
    used: set[int] = set()
    fence_info = {b.start: b.info for b in blocks}
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and not _DIVIDER.match(lines[j]):
            j += 1
        k = j + 1
        while k < len(lines) and not _REPLACE.match(lines[k]):
            k += 1
        if k >= len(lines):
            raise DiffParseError(
                f"line {start + 1}: a SEARCH block without its '=======' and "
                "'>>>>>>> REPLACE' lines"
            )
        path = None
        b = start - 1
        while b >= 0 and path is None:
            if b in fence_info:
                path = _info_path(fence_info[b])
            if path is None:
                path = _clean_label(lines[b]) if lines[b].strip() else None
            if path is None and lines[b].strip() and not _FENCE.match(lines[b]):
                if _REPLACE.match(lines[b]):  # several blocks in a row reuse the last path
                    path = edits[-1][0] if edits else None
                break
            b -= 1
        if path is None:
            raise DiffParseError(
                f"line {start + 1}: a SEARCH block with no file name before it; put the "
                "file's path on the line before the block"
            )
        edits.append((path, "".join(lines[start + 1 : j]), "".join(lines[j + 1 : k])))
        used.update(range(start, k + 1))
        i = k + 1
    return edits, used


def extract_changes(completion: str, files: Mapping[str, str] | None = None) -> ChangeSet:
    """Pull the edits out of a model's output. ``files`` holds the current contents of the
    files the edits may touch (needed for search/replace blocks and whole-file outputs).

    Raises :class:`DiffParseError` for a malformed edit, :class:`DiffApplyError` when a
    search/replace block does not match its file. Output with no edit gives an empty set."""
    files = dict(files or {})
    lines = split_lines(completion)
    blocks = _blocks(lines)
    cs = ChangeSet()
    patch = Patch()

    edits, used = _search_replace(lines, blocks)
    new_files: dict[str, str] = {}
    for path, search, replace in edits:
        current = new_files.get(path, files.get(path, ""))
        if search.strip() and path not in files and path not in new_files:
            raise DiffApplyError(
                f"A SEARCH block edits {path}, whose contents were not given; pass the "
                "current file in `files`."
            )
        new_files[path] = _replace_once(current, search, replace, path)
    if edits:
        cs.formats.append("search-replace")

    diff_blocks = [b for b in blocks if b.start not in used and _is_diff_block(b)]
    if diff_blocks:
        for b in diff_blocks:
            body = "".join(b.body)
            if not _has_file_header(b.body):
                # hunks with no file header: they can only be for the one file given (or the
                # file named in the fence label / just before it)
                target = _info_path(b.info) or _clean_label(b.label)
                if target is None and len(files) == 1:
                    target = next(iter(files))
                if target is None:
                    raise DiffParseError(
                        f"line {b.start + 2}: a diff with hunks but no '---'/'+++' file header; "
                        "name the file (a header, or pass the one file in `files`)"
                    )
                body = f"--- a/{target}\n+++ b/{target}\n" + body
            patch.files += parse_patch(body).files
        cs.formats.append("diff")
    elif not edits:
        rest = "".join(line for n, line in enumerate(lines) if n not in used)
        if "diff --git " in rest or re.search(r"^--- .*\n\+\+\+ ", rest, re.M):
            try:
                patch.files += parse_patch(rest).files
                cs.formats.append("diff")
            except DiffParseError as exc:
                cs.warnings.append(f"unfenced diff not parsed: {exc}")

    whole = 0
    for b in blocks:
        if b.start in used or _is_diff_block(b) or any(_SEARCH.match(x) for x in b.body):
            continue
        label = _info_path(b.info) or _clean_label(b.label)
        if label is None:
            continue
        content = "".join(b.body)
        if content and not content.endswith("\n"):
            content += "\n"
        new_files[label] = content
        whole += 1
    if whole:
        cs.formats.append("whole-file")

    if new_files:
        old = {p: files[p] for p in new_files if p in files}
        patch.files += diff_files(old, new_files).files
    cs.patch = patch
    if not cs:
        cs.warnings.append("no diff, search/replace block or path-labelled file found")
    return cs


def _is_diff_block(b: _Block) -> bool:
    lang = b.info.split()[0].lower() if b.info.split() else ""
    return (
        lang in _DIFF_LANGS
        or (not lang and _looks_like_diff(b.body))
        or (_looks_like_diff(b.body) and any(x.startswith(("--- ", "diff --git")) for x in b.body))
    )
