"""Recognising secrets, by name and by content, for the snapshotter (nothing secret enters the
store) and the miner (no mined example carries one).

By name: gitignore-style patterns (``[snapshot] secret_patterns``) matched here in Python, so
that no ignore-file negation (``!.env`` in a workspace's ``.gitignore``) can re-include them.
By content: PEM private-key blocks, cloud credential files (AWS access keys and credential
files, Google service-account keys) and token assignments whose value is a known token
(``sk-live-…``, ``ghp_…``, ``xoxb-…``, ``AKIA…``) or long and high in entropy
(``API_KEY=3f9aQ…``).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections import Counter
from collections.abc import Iterable

# what a secret file's content starts with or contains
_PEM = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_AWS_KEY_ID = re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
_AWS_FILE = re.compile(rb"(?im)^\s*aws_(?:secret_access_key|session_token)\s*=\s*\S{16,}")
_GCP_KEY = re.compile(rb'"type"\s*:\s*"service_account"[\s\S]{0,4000}"private_key"')
# NAME = value, NAME: value, NAME="value", export NAME=value, "name": "value"
_ASSIGN = re.compile(
    rb"""(?ix)
    (?:^|[\s,{;(])["']?
    ([a-z0-9_.\-]*(?:api[_-]?key|secret|token|passwd|password|pwd|credential|access[_-]?key
        |auth[_-]?key|private[_-]?key|client[_-]?secret)[a-z0-9_\-]*)
    ["']?\s*(?::=|=|:)\s*["']?
    ([A-Za-z0-9_\-+/=.~]{8,})
    """
)
_KNOWN_TOKEN = re.compile(
    rb"^(?:sk[-_](?:live|test|proj)[-_]|rk_live_|pk_live_|sk-ant-|ghp_|gho_|ghs_|ghu_|"
    rb"github_pat_|glpat-|xox[abpr]-|AKIA|ASIA|AIza|ya29\.|hf_[A-Za-z]|npm_[A-Za-z0-9]{8})"
)
# values that are code, not tokens: dotted paths (Lexer.token), snake_case and CONSTANT_CASE
_CODE_WORD = re.compile(
    rb"[A-Za-z_][A-Za-z0-9_']*(?:\.[A-Za-z_][A-Za-z0-9_']*)+|[a-z][a-z0-9]*(?:_[a-z0-9]+)+"
    rb"|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"
)
ENTROPY_MIN_LEN = 20
ENTROPY_BITS = 3.5


def entropy(s: bytes) -> float:
    """Shannon entropy of ``s`` in bits per character."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _looks_like_token(value: bytes) -> bool:
    if _KNOWN_TOKEN.match(value):
        return True
    if len(value) < ENTROPY_MIN_LEN or entropy(value) < ENTROPY_BITS:
        return False
    # identifiers and dotted paths (Lexer.token, String.concat) are code, not tokens
    has_digit = any(48 <= c <= 57 for c in value)
    has_alpha = any(65 <= c <= 90 or 97 <= c <= 122 for c in value)
    return has_digit and has_alpha and not _CODE_WORD.fullmatch(value)


def secret_in_content(data: bytes) -> str | None:
    """Why ``data`` looks like a secret (None: it does not)."""
    if b"PRIVATE KEY" in data and _PEM.search(data):
        return "contains a PEM private key"
    if _AWS_KEY_ID.search(data):
        return "contains an AWS access key id"
    if b"aws_" in data.lower() and _AWS_FILE.search(data):
        return "is a cloud credentials file (aws_secret_access_key)"
    if b"service_account" in data and _GCP_KEY.search(data):
        return "is a cloud credentials file (Google service-account key)"
    for m in _ASSIGN.finditer(data):
        if _looks_like_token(m.group(2).rstrip(b".")):
            name = m.group(1).decode("utf-8", "replace")
            return f"assigns a token to {name}"
    return None


def _glob_re(pat: str) -> re.Pattern[str]:
    """A gitignore glob with a ``/`` as a regexp over the whole relative path."""
    out, i = [], 0
    while i < len(pat):
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("/**", i) and i + 3 == len(pat):
            out.append("/.*")
            i += 3
        elif pat[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pat[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pat[i]))
            i += 1
    return re.compile("".join(out))


def _match_one(pattern: str, path: str) -> bool:
    pat = pattern.strip()
    if not pat or pat.startswith(("#", "!")):
        return False
    dir_only = pat.endswith("/")
    pat = pat.rstrip("/")
    parts = path.split("/")
    # the path itself, or one of the directories above it (a matched directory hides all)
    candidates = range(len(parts) - 1) if dir_only else range(len(parts))
    if "/" in pat:
        rx = _glob_re(pat.lstrip("/"))
        return any(rx.fullmatch("/".join(parts[: k + 1])) for k in candidates)
    return any(fnmatch.fnmatchcase(parts[k], pat) for k in candidates)


def secret_name(path: str, patterns: Iterable[str]) -> str | None:
    """The secret pattern that ``path`` (relative, ``/``-separated) matches, or None."""
    for pat in patterns:
        if _match_one(pat, path):
            return pat.strip()
    return None


def secret_reason(path: str, data: bytes | None, patterns: Iterable[str]) -> str | None:
    """Why a file must never be stored: its name matches a secret pattern, or its content
    looks like a secret. None: keep it."""
    pat = secret_name(path, patterns)
    if pat is not None:
        return f"secret (name matches {pat!r})"
    if data is not None:
        why = secret_in_content(data)
        if why:
            return f"secret (content {why})"
    return None


_DIFF_PATH = re.compile(r"^diff --git a/(.*?) b/(.*)$", re.M)


def example_secret(diff: str, files: dict[str, str], patterns: Iterable[str]) -> str | None:
    """Why a mined example (its diff and its context files) carries a secret, or None."""
    pats = list(patterns)
    for m in _DIFF_PATH.finditer(diff):
        for path in {m.group(1), m.group(2)}:
            why = secret_reason(path, None, pats)
            if why:
                return f"the diff touches {path}: {why}"
    why = secret_in_content(diff.encode("utf-8", "replace"))
    if why:
        return f"the diff {why}"
    for path, text in files.items():
        why = secret_reason(path, text.encode("utf-8", "replace"), pats)
        if why:
            return f"context file {path}: {why}"
    return None
