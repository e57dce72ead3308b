"""Intent from commit messages: the subject a developer wrote, rewritten into the short
imperative style people type in an editor.

    "fix(glob): double star parsing (#123)"      → "fix double star parsing in glob"
    "Added support for `**` patterns, thanks @x" → "add support for ** patterns"
    "Fixes #12: crash on empty input"             → "fix crash on empty input"

Issue and PR numbers (``#123``, ``(#45)``, ``GH-12``, ``owner/repo#9``, ``!7``), URLs, handles
(``@user``), ``[skip ci]`` tags and trailers (``Signed-off-by:``, ``Co-authored-by:``, …) are
stripped: no model could know them. :func:`clean_message` gives the whole message without them
(the example's description), :func:`subject_prompt` the editor-style subject (or ``None`` when
the subject says nothing usable: "wip", "Merge branch 'x'", a version number).
"""

from __future__ import annotations

import re

from bactrian.mine.prompts import IMPERATIVE, MAX_PROMPT_CHARS, MAX_PROMPT_WORDS

TRAILER = re.compile(
    r"^\s*(?:(?:[A-Za-z][\w-]*-by|co-authored-by|change-id|cc|fixes|closes|resolves|refs?|"
    r"see-also|pr-url|reviewed-on|differential revision|bug|issue|git-svn-id):\s.*"
    r"|\(cherry picked from commit [0-9a-f]+\))$",
    re.I,
)
_REF = re.compile(
    r"(?:https?://\S+)"  # links (issue pages, PRs)
    r"|(?:\b[\w.-]+/[\w.-]+)?#\d+\b"  # #123, owner/repo#123
    r"|\bGH-\d+\b|(?<![\w/])!\d+\b"  # GH-12, GitLab !7
    r"|(?:\b(?:by|thanks(?:\s+to)?|cc|from|h/t|reported\s+by|with)\s+)?@[\w-]+(?:\[bot\])?",
    re.I,
)
# words that are left dangling once a reference is gone ("closes #3", "see #4", "fix for #5")
_DANGLING = re.compile(
    r"\b(?:closes|closed|close|fixes|fixed|resolves|resolved|see|refs?|cf\.?|re|in|for|from|"
    r"via|by|thanks(?:\s+to)?|issue|issues|pr|pull\s+request|part\s+of|and|,)\s*\x00",
    re.I,
)
_TAG = re.compile(r"\[(?:skip ci|ci skip|no ci|skip-ci|wip|draft|minor|trivial)\]\s*", re.I)
_CONVENTIONAL = re.compile(
    r"^(?P<type>[A-Za-z]+)(?:\((?P<scope>[^)]*)\))?(?P<bang>!)?:\s*(?P<desc>.+)$"
)
_SCOPE_PREFIX = re.compile(r"^\[?(?P<scope>[\w./*+-]+)\]?:?\s+(?P<desc>.+)$")
TYPE_VERB = {
    "feat": "add",
    "feature": "add",
    "fix": "fix",
    "bugfix": "fix",
    "hotfix": "fix",
    "docs": "document",
    "doc": "document",
    "style": "format",
    "refactor": "refactor",
    "perf": "speed up",
    "test": "test",
    "tests": "test",
    "build": "update",
    "ci": "update",
    "chore": "update",
    "deps": "update",
    "revert": "revert",
    "security": "fix",
    "cleanup": "clean up",
    "clean": "clean up",
    "release": "release",
    "wip": "",
}
# noun-phrase subjects whose first word says the verb ("Support for X" → "add support for X")
_NOUN_LEAD = {
    "support": "add support",
    "new": "add a new",
    "initial": "add initial",
    "more": "add more",
    "missing": "add the missing",
    "better": "improve",
    "typo": "fix a typo",
    "typos": "fix typos",
    "tests": "add tests",
    "test": "add a test",
    "documentation": "document",
    "docs": "document",
    "doc": "document",
    "faster": "speed up",
    "cleanup": "clean up",
    "refactoring": "refactor",
}
_UNUSABLE = re.compile(
    r"^(?:wip|tmp|temp|misc|minor|changes|stuff|\.+|-+|update|updates|fix|fixes|cleanup|"
    r"v?\d+(?:\.\d+)+\S*|(?:release|prepare|bump(?: version)?(?: to)?|version)\s+v?\d+(?:\.\d+)*\S*)$",
    re.I,
)


_VERB_REF = re.compile(
    r"^(fix|fixes|fixed|close|closes|closed|resolve|resolves|resolved)\s+"
    r"(?:issue\s+)?(?:[\w.-]+/[\w.-]+)?(?:#|GH-)\d+\s*[:,-]?\s*(?=\S)",
    re.I,
)


def _strip_refs(text: str) -> str:
    text = _VERB_REF.sub(lambda m: "fix " if m.group(1).lower().startswith("fix") else "", text)
    text = _REF.sub("\x00", text)
    for _ in range(3):
        text = _DANGLING.sub("\x00", text)
    text = text.replace("\x00", "")
    text = re.sub(r"\(\s*[,;:]*\s*\)|\[\s*\]", "", text)
    text = re.sub(r"\s+([,;:.)])", r"\1", text)
    text = re.sub(r"[,;:]+([.;:])", r"\1", text)
    text = re.sub(r"^[\s,;:.)-]+", "", text)
    text = re.sub(r"[\s,;:(-]+$", "", text)
    return re.sub(r"\s{2,}", " ", text).strip()


def clean_message(message: str) -> str:
    """``message`` without trailers, issue/PR references, handles and CI tags."""
    out = []
    for k, line in enumerate(message.splitlines()):
        if k > 0 and TRAILER.match(line):  # a subject is never a trailer ("Bug: …")
            continue
        if not line.strip():
            out.append("")
            continue
        kept = _strip_refs(_TAG.sub("", line))
        if re.search(r"\w", kept):
            out.append(kept)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def subject_of(message: str) -> str:
    """The subject line: the first non-blank line; for a GitHub merge commit ("Merge pull
    request #N from …") the PR title on the following line."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    if not lines:
        return ""
    if re.match(r"^Merge (?:pull request|branch|remote-tracking branch|tag)\b", lines[0]):
        rest = [ln for ln in lines[1:] if not TRAILER.match(ln)]
        return rest[0] if rest and lines[0].startswith("Merge pull request") else ""
    return lines[0]


_IRREGULAR = {
    "made": "make",
    "makes": "make",
    "wrote": "write",
    "written": "write",
    "rewrote": "rewrite",
    "rewritten": "rewrite",
    "split": "split",
    "built": "build",
    "kept": "keep",
    "got": "get",
    "ran": "run",
    "did": "do",
    "done": "do",
    "took": "take",
    "taken": "take",
    "gave": "give",
    "given": "give",
    "moved": "move",
    "broke": "break",
    "brought": "bring",
    "set": "set",
    "put": "put",
}
# nominalisations: "Time parsing" → "parse time", "Wrong cast correction" → "correct wrong cast"
_NOUN_VERB = {
    "addition": "add",
    "additions": "add",
    "implementation": "implement",
    "correction": "correct",
    "factorisation": "factorise",
    "factorization": "factorize",
    "cleaning": "clean",
    "cleanup": "clean up",
    "removal": "remove",
    "improvement": "improve",
    "improvements": "improve",
    "optimisation": "optimise",
    "optimization": "optimize",
    "simplification": "simplify",
    "parsing": "parse",
    "printing": "print",
    "handling": "handle",
    "refactoring": "refactor",
    "rewrite": "rewrite",
    "renaming": "rename",
    "deprecation": "deprecate",
    "generalisation": "generalise",
    "generalization": "generalize",
    "documentation": "document",
    "validation": "validate",
    "conversion": "convert",
    "extraction": "extract",
    "integration": "integrate",
    "upgrade": "upgrade",
    "update": "update",
    "fix": "fix",
    "fixes": "fix",
    "bugfix": "fix",
    "support": "add support for",
    "tests": "test",
}


def imperative_verb(word: str) -> str | None:
    """``word`` as an imperative verb ("Added" → "add", "fixes" → "fix", "Re-organize" →
    "reorganize", "Unfunctorize" → "unfunctorize"), or None."""
    w = word.lower().strip(",.:;!'\"`()[]")
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    w = w.replace("-", "") if re.match(r"^(?:re|un|de|pre)-", w) else w
    candidates = [w]
    if w.endswith("ies"):
        candidates.append(w[:-3] + "y")
    if w.endswith("ied"):
        candidates.append(w[:-3] + "y")
    if w.endswith("es"):
        candidates.append(w[:-2])
    if w.endswith("s"):
        candidates.append(w[:-1])
    if w.endswith("ed"):
        candidates += [w[:-2], w[:-1]]
        if len(w) > 4 and w[-3] == w[-4]:
            candidates.append(w[:-3])
    if w.endswith("ing"):
        candidates += [w[:-3], w[:-3] + "e"]
        if len(w) > 5 and w[-4] == w[-5]:
            candidates.append(w[:-4])
    for c in candidates:
        if c in IMPERATIVE:
            return c
    for c in candidates:  # re-/un-/de- + a verb: "unrecord", "reorder", "deinline"
        for pre in ("re", "un", "de"):
            if c.startswith(pre) and c[len(pre) :] in IMPERATIVE:
                return c
    return None


def _lower_first(text: str) -> str:
    first, _, rest = text.partition(" ")
    # "Fix" → "fix", but "OCaml", "API", "Lwt_io" keep their case
    if first[:1].isupper() and first[1:] == first[1:].lower() and "_" not in first:
        first = first.lower()
    return f"{first} {rest}".strip()


def _scope_words(scope: str) -> list[str]:
    parts = [s.strip() for s in re.split(r"[,/+]|\band\b", scope) if s.strip() not in ("", "*")]
    return parts[:3]


_TEST_VERBS = {"add", "test", "fix", "check", "cover", "remove", "update", "use", "make", "move"}
_QUIET_SCOPES = {"deps", "deps-dev", "ci", "build", "release", "main", "all", "*", "misc"}


def _imperative(desc: str, verb_for_type: str = "") -> str | None:
    """``desc`` starting with an imperative verb, or None when no verb fits."""
    words = desc.split()
    if not words:
        return None
    verb = imperative_verb(words[0])
    nxt = words[1].lower() if len(words) > 1 else ""
    if verb == "support" and nxt in ("for", "of"):
        return " ".join(["add", "support", *words[1:]])
    if verb == "fix" and nxt == "for":
        return " ".join(["fix", *words[2:]]) if len(words) > 2 else None
    if verb_for_type == "test" and verb not in _TEST_VERBS:
        return f"test {_lower_first(desc)}"
    if verb is not None:
        return " ".join([verb, *words[1:]])
    lead = _NOUN_LEAD.get(words[0].lower().strip(",.:;"))
    if lead is not None:
        return " ".join([lead, *words[1:]])
    if verb_for_type:  # "fix(glob): double star parsing" → "fix double star parsing"
        return f"{verb_for_type} {_lower_first(desc)}"
    # "Partially implemented date actions" → "implement date actions partially"
    if len(words) > 2 and words[0].lower().endswith("ly"):
        v = imperative_verb(words[1])
        if v is not None:
            return " ".join([v, *words[2:], words[0].lower()])
    # "Ordinal dates support added" → "add ordinal dates support"
    last = words[-1].lower()
    if len(words) > 1 and last.endswith(("ed", "en")) and (v := imperative_verb(last)):
        return " ".join([v, _lower_det(" ".join(words[:-1]))])
    # "pp_format: the minute specifier is now modulo 60" → "make the minute specifier …"
    m = re.match(r"^(.+?)\s+(?:is|are)\s+(?:now\s+)?(.+)$", desc)
    if m and len(m.group(1).split()) <= 5:
        return f"make {_lower_det(m.group(1))} {m.group(2)}"
    # "Time parsing", "Wrong cast correction", "Little factorisation of f", "X addition to Y"
    nominal = [k for k, w in enumerate(words[:6]) if w.lower().strip(",.:;") in _NOUN_VERB]
    if nominal and not (nominal[0] == 0 and verb_for_type):
        k = nominal[-1] if nominal[-1] == len(words) - 1 else nominal[0]
        v = _NOUN_VERB[words[k].lower().strip(",.:;")]
        left = [w for w in words[:k] if w.lower() not in _FILLER]
        right = words[k + 1 :]
        if right and right[0].lower() == "of":
            return " ".join([v, *right[1:]]) if len(right) > 1 else None
        if not left:
            return " ".join([v, *right]) if right else None
        return " ".join([v, _lower_det(" ".join(left)), *right])
    return None


_FILLER = {"little", "small", "minor", "some", "few", "a", "an", "the", "more", "tiny"}
_DETERMINERS = {"the", "a", "an", "all", "some", "any", "this", "these", "those", "more", "new"}


def _lower_det(text: str) -> str:
    """Lower-case ``text``'s sentence-initial capital ("The lexer", "Time") but not a name
    ("Makefile", "OCaml", "META", "Lwt_io")."""
    first = text.partition(" ")[0].rstrip(",;:")
    if first.lower() in _DETERMINERS:
        return _lower_first(text)
    if first.endswith("file") or "." in first:
        return text
    return _lower_first(text)


def single_verb(subject: str) -> str | None:
    """A one-word subject that is a verb or names one ("Refactoring." → "refactor", "Format"
    → "format"), for "VERB MODULE" prompts."""
    words = _strip_refs(subject).strip().rstrip(".!").split()
    if len(words) != 1:
        return None
    w = words[0].lower()
    if w in ("wip", "tmp", "misc", "update", "changes", "stuff"):
        return None
    return _NOUN_VERB.get(w) or imperative_verb(w)


def _fit(text: str) -> str:
    """Cut an over-long subject at a clause boundary, then at a word boundary."""
    if len(text) <= MAX_PROMPT_CHARS and len(text.split()) <= MAX_PROMPT_WORDS:
        return text
    for sep in (" - ", "; ", ". ", ": ", ", "):
        head = text.split(sep, 1)[0]
        if len(head.split()) >= 2 and len(head) <= MAX_PROMPT_CHARS:
            text = head
            break
    words = text.split()[:MAX_PROMPT_WORDS]
    while words and len(" ".join(words)) > MAX_PROMPT_CHARS:
        words.pop()
    text = " ".join(words)
    if text.count("(") > text.count(")"):  # never leave "(clean" dangling
        text = text[: text.rfind("(")].rstrip(" ,;:-")
    return text


def editor_style(subject: str) -> str | None:
    """A commit subject as an editor prompt, or None when it carries no usable intent."""
    text = _strip_refs(_TAG.sub("", subject)).strip()
    text = re.sub(r"^(?:wip|draft)\s*:\s*", "", text, flags=re.I)
    text = text.replace("`", "").strip().rstrip(".!").strip()
    if re.match(r"^Merge\b", text):
        return None
    revert = re.match(r'^Revert\s+"(.+)"$', text)
    if revert:
        inner = editor_style(revert.group(1))
        return f"revert: {inner}" if inner else None
    text = re.sub(r"\b[0-9a-f]{7,40}\b", "", text).strip()
    first_sentence = re.split(r"\.\s+(?=[A-Z])", text, maxsplit=1)[0].strip().rstrip(".")
    arrow = re.match(r"^(\S+)\s*->\s*(\S+)$", first_sentence)
    if arrow:  # "tm.tm_isdst -> tm.Unix.tm_isdst"
        return f"replace {arrow.group(1)} with {arrow.group(2)}"
    bump = re.match(
        r"^(?:version|release|bump(?:\s+version)?(?:\s+to)?|prepare(?:\s+release)?|v)\s*"
        r"v?(\d+(?:\.\d+)+[\w.~+-]*)$",
        first_sentence,
        re.I,
    )
    if bump:
        return f"bump the version to {bump.group(1)}"
    if re.match(r"^(?:run\s+|apply\s+)?ocamlformat(?:\s+pass)?$", first_sentence, re.I):
        return "apply ocamlformat"
    if first_sentence != text and len(first_sentence.split()) >= 2:
        text = first_sentence  # "Fix date printing format. Version 0.1.3"
    head = text.split(" - ", 1)[0]
    if head != text and len(head.split()) >= 2:
        text = head
    text = re.sub(r"^(?:attempt(?:ing)?|try(?:ing)?)\s+to\s+", "", text, flags=re.I)
    verb_for_type = ""
    scopes: list[str] = []
    m = _CONVENTIONAL.match(text)
    if m and m.group("type").lower() in TYPE_VERB:
        verb_for_type = TYPE_VERB[m.group("type").lower()]
        scopes = _scope_words(m.group("scope") or "")
        text = m.group("desc").strip()
    else:
        s = _SCOPE_PREFIX.match(text)
        # "glob: fix double star" / "[lexer] handle tabs": a one-word prefix ending in ':'
        if s and (text.split()[0].endswith(":") or text.startswith("[")):
            scope = s.group("scope")
            if scope.lower() in TYPE_VERB:
                verb_for_type = TYPE_VERB[scope.lower()]
            else:
                scopes = _scope_words(scope)
            text = s.group("desc").strip()
    text = text.strip().rstrip(".!").strip()
    if not text or _UNUSABLE.match(text):
        return None
    imp = _imperative(text, verb_for_type)
    if imp is None:
        return None
    imp = _lower_first(imp) if imp[:1].isupper() else imp
    low = imp.lower()
    missing = [
        s
        for s in scopes
        if s.lower() not in low
        and s.lower().split(".")[0] not in low
        and s.lower() not in _QUIET_SCOPES
    ]
    if missing:
        imp += " in " + " and ".join(missing)
    imp = _fit(imp)
    if len(imp.split()) < 2 or _UNUSABLE.match(imp):
        return None
    return imp


def subject_prompt(message: str) -> str | None:
    """The editor-style prompt of a commit ``message`` (None: nothing usable)."""
    return editor_style(subject_of(message))


def clauses(subject_prompt_text: str) -> list[str]:
    """The clauses of an editor-style subject, each an instruction of its own: "add the stats
    module and use it in report" → ["add the stats module", "use it in report"]; a clause
    without a verb inherits the first clause's ("add x and y" → "add x", "add y")."""
    raw = [
        c.strip() for c in re.split(r",\s*(?:and\s+)?|\s+and\s+|;\s*|\s+\+\s+", subject_prompt_text)
    ]
    raw = [c for c in raw if c]
    if len(raw) < 2:
        return raw
    verb = raw[0].split()[0]
    out = []
    for c in raw:
        if imperative_verb(c.split()[0]) is None:
            c = f"{verb} {c}"
        out.append(c)
    return out
