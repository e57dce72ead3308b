"""Checks on editor-style prompts: does it read like what a developer types (short, imperative,
no code blocks), and does it leak the answer (a copy of the new code, or identifiers the diff
introduces that the context lacks)?

A prompt may name the definitions the change adds — "add a to_string for t" is how people ask
for one — so new *top-level definition names* are allowed; other new identifiers (helpers,
locals, constructors the diff invents) are leaks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bactrian.mine.parts import DEFINITION
from bactrian.mine.patchview import added, as_patch, removed

IMPERATIVE = frozenset(
    [
        "abstract",
        "accept",
        "add",
        "adjust",
        "align",
        "allocate",
        "allow",
        "annotate",
        "append",
        "apply",
        "avoid",
        "bench",
        "benchmark",
        "bind",
        "bound",
        "break",
        "bring",
        "build",
        "bump",
        "cache",
        "call",
        "canonicalise",
        "canonicalize",
        "cap",
        "catch",
        "change",
        "check",
        "clarify",
        "clean",
        "clear",
        "close",
        "comment",
        "compile",
        "complete",
        "compute",
        "connect",
        "convert",
        "copy",
        "correct",
        "count",
        "cover",
        "create",
        "declare",
        "decode",
        "dedup",
        "deduplicate",
        "define",
        "delete",
        "depend",
        "deprecate",
        "describe",
        "detect",
        "disable",
        "disallow",
        "do",
        "document",
        "downgrade",
        "drop",
        "duplicate",
        "emit",
        "enable",
        "encode",
        "enforce",
        "ensure",
        "escape",
        "exercise",
        "expand",
        "explain",
        "export",
        "expose",
        "extend",
        "extract",
        "factor",
        "factorise",
        "factorize",
        "fill",
        "filter",
        "finish",
        "fix",
        "fold",
        "follow",
        "forbid",
        "format",
        "forward",
        "functorise",
        "functorize",
        "fuzz",
        "generalise",
        "generalize",
        "generate",
        "get",
        "give",
        "guard",
        "handle",
        "hide",
        "ignore",
        "implement",
        "improve",
        "include",
        "increase",
        "indent",
        "initialise",
        "initialize",
        "inline",
        "insert",
        "install",
        "integrate",
        "introduce",
        "keep",
        "let",
        "limit",
        "link",
        "load",
        "lock",
        "log",
        "lower",
        "make",
        "map",
        "mark",
        "measure",
        "memoise",
        "memoize",
        "mention",
        "merge",
        "migrate",
        "move",
        "mute",
        "normalise",
        "normalize",
        "note",
        "offer",
        "optimise",
        "optimize",
        "pad",
        "parameterise",
        "parameterize",
        "parse",
        "pass",
        "permit",
        "pin",
        "port",
        "prefer",
        "prepare",
        "preserve",
        "prevent",
        "print",
        "propagate",
        "protect",
        "provide",
        "publish",
        "put",
        "quote",
        "raise",
        "re-export",
        "read",
        "recognise",
        "recognize",
        "record",
        "reduce",
        "reexport",
        "refactor",
        "reformat",
        "register",
        "reimplement",
        "reject",
        "relax",
        "release",
        "remove",
        "rename",
        "reorder",
        "reorganise",
        "reorganize",
        "replace",
        "report",
        "resolve",
        "restore",
        "restructure",
        "retry",
        "return",
        "reuse",
        "revert",
        "rework",
        "rewrite",
        "round",
        "run",
        "sanitise",
        "sanitize",
        "save",
        "set",
        "share",
        "show",
        "shrink",
        "silence",
        "simplify",
        "skip",
        "sort",
        "specialise",
        "specialize",
        "speed",
        "split",
        "start",
        "stop",
        "store",
        "strip",
        "support",
        "suppress",
        "swap",
        "take",
        "teach",
        "test",
        "thread",
        "tidy",
        "track",
        "trim",
        "try",
        "turn",
        "tweak",
        "unbreak",
        "uncomment",
        "undo",
        "unfunctorize",
        "unify",
        "unlock",
        "unpin",
        "unquote",
        "unwrap",
        "update",
        "upgrade",
        "use",
        "validate",
        "vendor",
        "verify",
        "warn",
        "work",
        "wrap",
        "write",
    ]
)
STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "for",
        "to",
        "of",
        "in",
        "on",
        "at",
        "by",
        "with",
        "from",
        "into",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "is",
        "be",
        "add",
        "fix",
        "make",
        "use",
        "new",
        "old",
        "let",
        "type",
        "val",
        "module",
        "open",
        "end",
        "then",
        "else",
        "if",
        "match",
        "with",
        "fun",
        "function",
        "error",
        "errors",
        "value",
        "values",
        "test",
        "tests",
        "file",
        "files",
        "string",
        "int",
        "list",
        "option",
        "unit",
        "bool",
        "true",
        "false",
        "not",
        "when",
        "where",
        "what",
        "which",
    ]
)
MAX_PROMPT_CHARS = 160
MAX_PROMPT_WORDS = 24
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_']*")


def instruction(prompt: str) -> str:
    """The typed instruction: a prompt's first paragraph (fix prompts append diagnostics)."""
    return prompt.strip().split("\n\n", 1)[0].strip()


def prompt_problems(prompt: str) -> list[str]:
    """Why ``prompt`` does not read like an editor prompt ([] = fine)."""
    text = instruction(prompt)
    problems = []
    if not text:
        return ["empty prompt"]
    if "```" in prompt or "\n    " in text:
        problems.append("contains a code block")
    if "\n" in text:
        problems.append("instruction spans several lines")
    if len(text) > MAX_PROMPT_CHARS or len(text.split()) > MAX_PROMPT_WORDS:
        problems.append(f"too long ({len(text.split())} words, {len(text)} chars)")
    if len(text.split()) < 2:
        problems.append("too short")
    first = text.split()[0].lower().strip(",.:;!") if text.split() else ""
    if first not in IMPERATIVE:
        problems.append(f"not imperative (starts with {first!r})")
    return problems


_TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"'  # string literals, one token
    r"|[A-Za-z_][\w']*"
    r"|\d[\w.]*"
    r"|->|<-|:=|::|\|>|@@|<>|<=|>=|&&|\|\||\^\^|[^\s\w]"
)
LEAK_MIN_RUN = 3  # tokens, of which at least 2 look like code
LEAK_MIN_PROSE_RUN = 6  # tokens of plain words copied from an added line


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _is_code_token(tok: str) -> bool:
    if not (tok[:1].isalpha() or tok[:1] == "_"):
        return True  # operator, punctuation, number, string literal
    return "_" in tok or "'" in tok or any(c.isdigit() for c in tok) or tok[:1].isupper()


def _ngrams(toks: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def introduced_identifiers(
    diff: str, context_text: str, intent: str = ""
) -> tuple[set[str], set[str]]:
    """(identifiers in added lines that neither the context, the removed lines nor the intent
    have, names of top-level definitions the diff adds)."""
    patch = as_patch(diff)
    known = set(_IDENT.findall(context_text)) | set(_IDENT.findall(intent))
    for fp in patch.files:
        for line in removed(fp):
            known.update(_IDENT.findall(line))
    new: set[str] = set()
    defined: set[str] = set()
    for fp in patch.files:
        for line in added(fp):
            new.update(_IDENT.findall(line))
            m = DEFINITION.match(line)
            if m and not line[:1].isspace():  # top-level definitions only
                defined.add(m.group(1))
    return new - known, defined


def leaks(
    prompt: str,
    diff: str,
    context_files: Iterable[str],
    *,
    intent: str = "",
    allowed: Iterable[str] | None = None,
    known: Iterable[str] = (),
) -> list[str]:
    """How ``prompt`` leaks the answer ([] = no leak). A leak is something only the diff's added
    side has: a whole added line; a distinctive token sequence of one (≥ 3 tokens of which ≥ 2
    look like code, e.g. ``t / 100`` or ``"%d.%02d" (t``, or ≥ 6 plain words); an identifier
    nothing before the change has. What the ``intent`` (commit message, compiler errors) says
    is known, so a prompt may repeat it; ``allowed`` names may be asked for (default: the
    top-level definitions the diff adds — "add a to_string for t"); ``known`` names are known
    besides the context's text (e.g. the module names of the files it shows)."""
    context_text = "\n".join(context_files)
    patch = as_patch(diff)
    added_lines = [line for fp in patch.files for line in added(fp)]
    known_lines = [line for fp in patch.files for line in removed(fp)]
    known_text = "\n".join([context_text, intent, *known_lines])
    known_flat = " ".join(known_text.split())
    problems = []
    flat = " ".join(prompt.split())
    for line in added_lines:
        code = " ".join(line.split())
        if len(code) >= 12 and code in flat and code not in known_flat:
            problems.append(f"copies new code: {code!r}")
    new_idents, defined = introduced_identifiers(diff, context_text, intent)
    ok = set(defined if allowed is None else allowed) | set(known)
    known_idents = set(_IDENT.findall(known_text)) | ok
    problems += _copied_sequences(tokens(prompt), added_lines, known_text, known_idents)
    suspicious = {
        i
        for i in new_idents - ok
        if len(i) >= 3 and i.lower() not in STOPWORDS and i.lower() not in IMPERATIVE
    }
    for word in sorted(set(_IDENT.findall(prompt)) & suspicious):
        problems.append(f"names {word!r}, which only the new code introduces")
    return problems


def _copied_sequences(
    ptoks: list[str], added_lines: list[str], known_text: str, known_idents: set[str]
) -> list[str]:
    """Maximal runs of the prompt's tokens that appear in an added line and nowhere before.
    Known names and the dot of a qualified name do not make a run distinctive
    (``Glob.parse`` of a known ``Glob`` and ``parse`` is no leak)."""
    if len(ptoks) < LEAK_MIN_RUN or not added_lines:
        return []
    added_toks = [tokens(line) for line in added_lines]
    longest = max((len(t) for t in added_toks), default=0)
    top = min(len(ptoks), longest)
    added_grams: dict[int, set[tuple[str, ...]]] = {}
    for n in range(LEAK_MIN_RUN, top + 1):
        grams: set[tuple[str, ...]] = set()
        for t in added_toks:
            grams |= _ngrams(t, n)
        added_grams[n] = grams
    hits: list[tuple[int, int]] = []  # (start, end) in ptoks
    for n in range(top, LEAK_MIN_RUN - 1, -1):
        for i in range(len(ptoks) - n + 1):
            gram = tuple(ptoks[i : i + n])
            if gram not in added_grams[n]:
                continue
            if any(s <= i and i + n <= e for s, e in hits):
                continue  # inside a longer run already reported
            code = sum(1 for t in gram if _is_code_token(t) and t != "." and t not in known_idents)
            if not (code >= 2 or n >= LEAK_MIN_PROSE_RUN):
                continue
            hits.append((i, i + n))
    if not hits:
        return []
    known_toks = tokens(known_text)
    out = []
    for s, e in sorted(hits):
        gram = tuple(ptoks[s:e])
        if gram in _ngrams(known_toks, len(gram)):
            continue
        out.append(f"copies a sequence of the new code: {' '.join(gram)!r}")
    return out
