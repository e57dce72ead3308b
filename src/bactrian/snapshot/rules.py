"""What goes into a snapshot: ignore rules and per-file checks.

Ignore rules are handed to git as the store repository's ``info/exclude``: the configured
``ignore`` and ``secret_patterns``, the workspace's ``.hgignore`` (glob lines, and the simple
regexp forms, translated to gitignore patterns; other regexps are applied here in Python) and
the workspace's own ``.git/info/exclude``. The workspace's ``.gitignore`` files are read by git
itself. Per file, :func:`check_file` skips what git cannot be told by pattern: files over the
size limit, binary files (a NUL byte in the first 8000 bytes, git's own test), non-UTF-8 names,
special files and nested repositories — and secrets: a path matching ``secret_patterns`` is
skipped here too, so that no negation in a workspace's ignore files (``!.env``, ``!*.pem``)
re-includes it, and a file whose content looks like a secret (a PEM private key, a cloud
credentials file, a token assignment such as ``API_KEY=sk-live-…``; see
:mod:`bactrian.secrets`) is skipped whatever its name.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bactrian.secrets import secret_in_content, secret_name
from bactrian.snapshot.config import SnapshotConfig

BINARY_SNIFF_BYTES = 8000

_SIMPLE_RE = re.compile(r"^[A-Za-z0-9_\-.]+$")


@dataclass
class IgnoreRules:
    exclude_text: str
    hg_regexps: list[re.Pattern[str]] = field(default_factory=list)

    def hg_ignored(self, path: str) -> bool:
        return any(rx.search(path) for rx in self.hg_regexps)


def _unescape_simple(rx: str) -> str | None:
    """``foo\\.bar`` → ``foo.bar`` when the regexp is a plain literal, else None."""
    out = re.sub(r"\\(.)", r"\1", rx)
    return out if _SIMPLE_RE.match(out) and "*" not in out else None


def _translate_regexp(rx: str) -> str | None:
    """The gitignore pattern equivalent to a simple hg regexp, or None."""
    m = re.fullmatch(r"\^(.+?)(\$|/|\(/\|\$\)|\(\?:/\|\$\))", rx)
    if m:
        lit = _unescape_simple(m.group(1).replace("\\/", "/")) if "/" not in m.group(1) else None
        if lit:
            return "/" + lit + ("/" if m.group(2) == "/" else "")
    m = re.fullmatch(r"\\\.([A-Za-z0-9_]+)\$", rx)
    if m:
        return "*." + m.group(1)
    m = re.fullmatch(r"(?:\(\^\|/\))?([A-Za-z0-9_\-]+(?:\\\.[A-Za-z0-9_\-]+)*)(\$|/|\(/\|\$\))", rx)
    if m:
        lit = _unescape_simple(m.group(1))
        if lit:
            return lit + ("/" if m.group(2) == "/" else "")
    return None


def parse_hgignore(text: str) -> tuple[list[str], list[re.Pattern[str]]]:
    """gitignore patterns and leftover regexps for the lines of an ``.hgignore`` file."""
    patterns: list[str] = []
    regexps: list[re.Pattern[str]] = []
    syntax = "regexp"
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("\\#") else raw.strip()
        if not line:
            continue
        if line.startswith("syntax:"):
            syntax = line.split(":", 1)[1].strip()
            continue
        kind = syntax
        for prefix, k in (
            ("glob:", "glob"),
            ("re:", "regexp"),
            ("regexp:", "regexp"),
            ("rootglob:", "rootglob"),
            ("path:", "rootglob"),
        ):
            if line.startswith(prefix):
                kind, line = k, line[len(prefix) :]
                break
        if kind == "glob":
            patterns.append(("**/" + line) if "/" in line.rstrip("/") else line)
        elif kind == "rootglob":
            patterns.append("/" + line.lstrip("/"))
        else:
            translated = _translate_regexp(line)
            if translated is not None:
                patterns.append(translated)
            else:
                try:
                    regexps.append(re.compile(line))
                except re.error:
                    continue
    return patterns, regexps


def build_rules(workspace: Path, config: SnapshotConfig) -> IgnoreRules:
    lines = ["# written by bactrian; regenerated before every snapshot", "# [snapshot] ignore"]
    lines += config.ignore
    lines += ["# [snapshot] secret_patterns"]
    lines += config.secret_patterns
    regexps: list[re.Pattern[str]] = []
    try:
        hg = (workspace / ".hgignore").read_text("utf-8", "replace")
    except OSError:
        hg = None
    if hg is not None:
        pats, regexps = parse_hgignore(hg)
        lines += ["# .hgignore"] + pats
    try:
        user_exclude = (workspace / ".git" / "info" / "exclude").read_text("utf-8", "replace")
        lines += ["# .git/info/exclude", user_exclude]
    except OSError:
        pass
    return IgnoreRules("\n".join(lines) + "\n", regexps)


def check_file(
    workspace: Path, rel: bytes, max_file_bytes: int, secret_patterns: Sequence[str] = ()
) -> tuple[str | None, os.stat_result | None]:
    """Why ``rel`` must be skipped (None: keep it), and its lstat (None if it vanished)."""
    full = os.path.join(os.fsencode(workspace), rel.rstrip(b"/"))
    pat = secret_name(rel.rstrip(b"/").decode("utf-8", "replace"), secret_patterns)
    if pat is not None:
        try:
            st_secret: os.stat_result | None = os.lstat(full)
        except OSError:
            return "vanished", None
        return f"secret (name matches {pat!r}; secret rules win over ignore-file negations)", (
            st_secret
        )
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return "vanished", None
    except OSError as exc:
        return f"cannot stat: {exc.strerror}", None
    try:
        rel.decode("utf-8")
    except UnicodeDecodeError:
        return "file name is not valid UTF-8", st
    if rel.endswith(b"/"):
        return "nested repository (a directory with its own .git); its files are not recorded", st
    if stat.S_ISLNK(st.st_mode):
        return None, st  # stored as a symlink (its target text), never followed
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file", st
    if st.st_size > max_file_bytes:
        return f"larger than max_file_bytes ({st.st_size} > {max_file_bytes})", st
    try:
        with open(full, "rb") as fh:
            data = fh.read(max_file_bytes + 1)
    except FileNotFoundError:
        return "vanished", None
    except OSError as exc:
        return f"cannot read: {exc.strerror}", st
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return "binary file", st
    why = secret_in_content(data)
    if why:
        return f"secret (content {why})", st
    return None, st
