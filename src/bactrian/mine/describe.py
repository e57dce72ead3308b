"""Descriptions: a detailed description of each example's diff and the short editor-style
prompt a developer would type for it.

Every prompt records where it came from (``stats["prompt_source"]``), best first:

- ``commit-message`` — the commit's subject in the editor style (:mod:`bactrian.mine.intent`);
  a part of a split commit gets the clause of the subject that the part does, or what the part
  does with the commit's intent;
- ``diagnostics`` — a fix keeps the compiler's errors, whole, after its instruction line;
- ``llm`` — a model's detailed description cut to one editor-style line;
- ``diff-summary`` — what the diff means (:mod:`bactrian.mine.summary`): a new function, a
  changed case, a new test;
- ``fallback`` — "update FILE", the last resort (counted in the mining report).

Every candidate passes the prompt filter and the leak audit (:mod:`bactrian.mine.prompts`)
or the next source is tried. Describers (one Protocol, registry ``DESCRIBERS``):
``deterministic`` (offline; the default when no model is configured) and ``llm`` (two steps
through a :class:`~bactrian.models.ModelBackend`; falls back to the deterministic prompt).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from bactrian.dataset.example import Example
from bactrian.errors import ModelError
from bactrian.mine.context import is_test_path
from bactrian.mine.intent import clauses, clean_message, single_verb, subject_of, subject_prompt
from bactrian.mine.patchview import as_patch
from bactrian.mine.prompts import STOPWORDS, instruction, leaks, prompt_problems
from bactrian.mine.summary import OCAML, Meaning, meaning, module_name, stats_lines
from bactrian.models import ModelBackend, ModelConfig, load_model_config, make_backend
from bactrian.registry import Registry
from bactrian.types import Diagnostic

PROMPT_SOURCES = ("commit-message", "diagnostics", "llm", "diff-summary", "fallback")


@dataclass
class Description:
    prompt: str
    description: str
    source: str  # one of PROMPT_SOURCES
    rejected: list[str] | None = None


class Describer(Protocol):
    name: str

    def describe(self, example: Example) -> Description: ...


def diagnostics_block(example: Example) -> str:
    """The diagnostics as the editor shows them, each message whole (a type error's expected
    type is on its second line)."""
    diags = [Diagnostic.from_dict(d) for d in example.diagnostics]
    lines = []
    for d in diags:
        msg = d.message.strip()
        lines.append(f"{d.file}:{d.line}:{d.col}: {d.severity.value}: {msg}")
    return "\n".join(lines)


def with_diagnostics(text: str, example: Example) -> str:
    block = diagnostics_block(example) if example.kind == "fix" else ""
    return f"{text}\n\n{block}" if block else text


def commit_message(example: Example) -> str:
    """The commit message of a VCS example ("" for snapshot episodes). Examples mined before
    the message was kept in ``base`` still carry it in an undescribed ``description``."""
    msg = example.base.get("message")
    if isinstance(msg, str):
        return msg
    if example.base.get("type") in ("git", "hg") and "prompt_source" not in example.stats:
        return example.description
    return ""


def intent_text(example: Example) -> str:
    """What the developer said or saw before the change: the commit message, or the compiler's
    diagnostics (names in it may appear in a prompt)."""
    if example.kind == "fix":
        return diagnostics_block(example) + "\n" + commit_message(example)
    return clean_message(commit_message(example))


_UPDATE_FILE = re.compile(r"^update\s+[\w./-]+(?:\s*(?:,|and)\s*[\w./-]+)*$", re.I)


def is_update_file(prompt: str) -> bool:
    """An "update FILE" prompt: names files, says nothing of the intent (the last resort)."""
    text = instruction(prompt)
    if not _UPDATE_FILE.match(text):
        return False
    rest = re.split(r"[\s,]+", text)[1:]
    return all("." in w or w in ("dune", "and", "Makefile") for w in rest if w)


_FIX_PHRASE = {
    "syntax": "fix the syntax error in {f}",
    "type": "fix the type error in {f}",
    "unbound": "fix the unbound name in {f}",
    "test": "make the failing test in {f} pass",
    "warning": "fix the warning in {f}",
}


@dataclass
class _Candidate:
    source: str
    text: str
    allowed: set[str] | None  # names the prompt may use beyond the intent (None: diff's defs)


class DeterministicDescriber:
    """Prompts without a model, from the best source there is: the commit message (for a part
    of a split commit, the clause of the subject that the part does), the compiler's errors
    for fixes, the meaning of the diff, and only as the last resort "update FILE"."""

    name = "deterministic"

    def describe(self, example: Example) -> Description:
        ex = example
        meaning_ = meaning(ex.diff, ex.files)
        intent = intent_text(ex)
        rejected: list[str] = []
        for cand in self._candidates(ex, meaning_):
            problems = prompt_problems(cand.text) + leaks(
                cand.text,
                ex.diff,
                ex.files.values(),
                intent=intent,
                allowed=cand.allowed,
                known=shown_modules(ex),
            )
            if problems:
                rejected += [f"{cand.source}: {p}" for p in problems]
                continue
            detail = self._detail(ex, cand.text, meaning_)
            return Description(with_diagnostics(cand.text, ex), detail, cand.source, rejected)
        text = self._fallback(ex)
        return Description(
            with_diagnostics(text, ex), self._detail(ex, text, meaning_), "fallback", rejected
        )

    def _candidates(self, ex: Example, m: Meaning) -> list[_Candidate]:
        out: list[_Candidate] = []
        if ex.kind == "fix":
            phrase = self._fix(ex)
            if phrase:
                out.append(_Candidate("diagnostics", phrase, set()))
        summary = m.prompt()
        msg = commit_message(ex)
        subject = subject_prompt(msg) if msg else None
        if msg and subject is None and (verb := single_verb(subject_of(msg))):
            # "Refactoring." / "Format": the verb is the intent, the code says where
            where = m.main_module()
            subject = f"{verb} {where}" if where else None
        if subject and ex.kind != "fix":
            defined = m.defined()
            if int(ex.base.get("parts", 1) or 1) > 1:
                intents = part_intents(subject, m, summary)
            else:
                intents = [(subject, "commit-message")]
            if summary and is_update_file(subject):  # "Update glob.ml": the diff says more
                out.append(_Candidate("diff-summary", summary, defined))
            for text, source in intents:
                out.append(_Candidate(source, text, defined if text != subject else set()))
        if summary:
            out.append(_Candidate("diff-summary", summary, m.defined()))
        return out

    def _fix(self, ex: Example) -> str | None:
        diags = [Diagnostic.from_dict(d) for d in ex.diagnostics]
        errors = [d for d in diags if d.severity.value == "error"] or diags
        if not errors:
            return None
        first = errors[0]
        name = posixpath.basename(first.file)
        if first.kind == "test" or is_test_path(first.file):
            return _FIX_PHRASE["test"].format(f=name)
        phrase = _FIX_PHRASE.get(first.kind, "fix the error in {f}").format(f=name)
        if len(errors) > 1 and len({d.file for d in errors}) == 1:
            phrase = phrase.replace(" error in", " errors in", 1)
        return phrase

    def _fallback(self, ex: Example) -> str:
        files = [fp.path for fp in as_patch(ex.diff).files]
        if ex.kind == "fix":
            return f"fix the build in {posixpath.basename(files[0])}" if files else "fix the build"
        names = list(dict.fromkeys(posixpath.basename(f) for f in files))
        return "update " + ", ".join(names[:2]) if names else "update the code"

    def _detail(self, ex: Example, text: str, m: Meaning) -> str:
        msg = clean_message(commit_message(ex))
        head = msg or text[0].upper() + text[1:] + "."
        if ex.kind == "fix" and ex.description.strip() and not commit_message(ex):
            head = ex.description.strip()
        what = m.detail()
        body = f"{head}\n{what}" if what else head
        return f"{body}\nFiles: {stats_lines(ex.diff)}."


def part_intents(subject: str, m: Meaning, summary: str | None) -> list[tuple[str, str]]:
    """Candidate intents of one part of a split commit, best first: the clause of the commit
    subject that names what the part touches ("add the stats module and use it in report" →
    the part adding stats.ml gets "add the stats module"); what the part does with the
    commit's intent ("add a Stats module (part of: …)"); the whole subject. Each is
    (text, prompt source)."""
    out: list[tuple[str, str]] = []
    parts = clauses(subject)
    if len(parts) > 1:
        names = m.names()
        scored = sorted(((_score(c, names), k) for k, c in enumerate(parts)), reverse=True)
        if scored[0][0] > 0 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
            out.append((parts[scored[0][1]], "commit-message"))
    if summary:
        combined = f"{summary} (part of: {subject})"
        if not prompt_problems(combined):
            out.append((combined, "commit-message"))
    out.append((subject, "commit-message"))
    return out


def _score(clause: str, names: set[str]) -> int:
    words = {w.lower() for w in re.findall(r"[A-Za-z_][\w']*", clause)}
    return len({w for w in words if w not in STOPWORDS and w in names})


DETAIL_SYSTEM = (
    "You are a senior OCaml developer. Describe the code change below in detail: what changed "
    "and why. Plain prose, no code."
)
REWRITE_SYSTEM = (
    "Rewrite the description below as the short instruction a developer would type in their "
    "editor to ask for this change, e.g. 'fix the type error in ledger.ml' or 'add a to_string "
    "for t'. One line, imperative, at most 15 words, no code, do not spell out the solution. "
    "Answer with the instruction only."
)


def _render_for_model(ex: Example, max_chars: int = 6000) -> str:
    parts = []
    for path, text in ex.files.items():
        parts.append(f"--- {path}\n{text[:1500]}")
    block = diagnostics_block(ex)
    if block:
        parts.append(f"Build errors before the change:\n{block}")
    msg = clean_message(commit_message(ex))
    if msg:
        parts.append(f"The developer's commit message:\n{msg}")
    parts.append(f"The change (unified diff):\n{ex.diff}")
    return "\n\n".join(parts)[-max_chars:]


class LLMDescriber:
    """Two steps through a model: a detailed description of the change (told the commit
    message or the compiler's errors when there are some), then the short editor prompt cut
    from it, which must pass the prompt filter and the leak audit. A VCS commit keeps its
    message as the prompt (the developer's own words are the primary source; the model writes
    the description). A rejected or failed reply falls back to the deterministic prompt."""

    name = "llm"

    def __init__(
        self,
        backend: ModelBackend,
        fallback: Describer | None = None,
        *,
        detail_tokens: int = 400,
        prompt_tokens: int = 40,
        context_chars: int = 6000,
    ) -> None:
        self.backend = backend
        self.fallback = fallback or DeterministicDescriber()
        # tokens the model may write for the description and for the short prompt (a small
        # local model on a CPU writes a few tokens a second: the demo keeps them short)
        self.detail_tokens = detail_tokens
        self.prompt_tokens = prompt_tokens
        self.context_chars = context_chars  # of the change shown to the model (its tail)

    def describe(self, example: Example) -> Description:
        fb = self.fallback.describe(example)
        try:
            detail, short = self._ask(example)
        except ModelError as exc:  # one bad reply must not sink a whole mining run
            return Description(fb.prompt, fb.description, fb.source, [f"model error: {exc}"])
        if fb.source == "commit-message":
            return Description(fb.prompt, detail or fb.description, fb.source)
        short = short.strip().strip("\"'`").rstrip(".").strip()
        if short:
            short = short[0].lower() + short[1:]
        problems = check_prompt(short, example)
        if problems:
            return Description(fb.prompt, detail or fb.description, fb.source, problems)
        return Description(with_diagnostics(short, example), detail, self.name)

    def _ask(self, example: Example) -> tuple[str, str]:
        detail = self.backend.complete(
            [
                {"role": "system", "content": DETAIL_SYSTEM},
                {"role": "user", "content": _render_for_model(example, self.context_chars)},
            ],
            max_tokens=self.detail_tokens,
        ).text.strip()
        short = self.backend.complete(
            [
                {"role": "system", "content": REWRITE_SYSTEM},
                {"role": "user", "content": detail},
            ],
            max_tokens=self.prompt_tokens,
            stop=["\n"],
        ).text.strip()
        return detail, short


def check_prompt(prompt: str, example: Example) -> list[str]:
    """Prompt-filter problems plus leaks for ``prompt`` as a prompt of ``example``: what the
    commit message or the diagnostics say counts as known, and what the change defines
    (functions, constructors, modules, libraries) may be asked for."""
    text = instruction(prompt)
    return prompt_problems(text) + audit_leaks(example, text)


def audit_leaks(example: Example, prompt: str | None = None) -> list[str]:
    """The leak audit of ``prompt`` (default: the example's own) as a prompt of ``example``:
    what the commit message or the diagnostics say counts as known, and what the change
    defines (functions, constructors, modules, libraries) may be asked for."""
    text = instruction(example.prompt if prompt is None else prompt)
    return leaks(
        text,
        example.diff,
        example.files.values(),
        intent=intent_text(example),
        known=shown_modules(example) | meaning(example.diff, example.files).defined(),
    )


def shown_modules(example: Example) -> set[str]:
    """Module names of the files the example shows or touches (``lib/glob.ml`` → ``Glob``): a
    prompt may name them, whatever their text says."""
    paths = list(example.files) + [fp.path for fp in as_patch(example.diff).files]
    return {module_name(p) for p in paths if p.endswith(OCAML)}


DescriberFactory = Callable[[ModelConfig], Describer]
DESCRIBERS: Registry[DescriberFactory] = Registry("describer")
DESCRIBERS.add("deterministic", lambda cfg: DeterministicDescriber())
DESCRIBERS.add("llm", lambda cfg: LLMDescriber(make_backend(cfg)))


def make_describer(name: str = "", model: ModelConfig | None = None) -> Describer:
    """``name`` or, when empty, ``llm`` if a model is configured else ``deterministic``."""
    model = model or load_model_config()
    if not name:
        name = "llm" if model.configured else "deterministic"
    return DESCRIBERS.get(name)(model)


def describe_examples(
    examples: Iterable[Example],
    describer: Describer,
    *,
    only_missing: bool = False,
    progress: Callable[[Iterable[Example]], Iterable[Example]] | None = None,
) -> dict[str, Any]:
    """Set ``prompt``/``description`` on each example in place, with ``stats["prompt_source"]``
    and the leak audit's findings for the final prompt (``stats["prompt_leaks"]``, normally
    empty); returns counts per source, per rejection reason, of "update FILE" prompts and of
    leaking prompts."""
    counts: dict[str, Any] = {
        "described": 0,
        "by_source": {},
        "rejected": {},
        "update_file": 0,
        "leaks": 0,
    }
    items = list(examples)
    for ex in progress(items) if progress is not None else items:
        if only_missing and ex.prompt:
            continue
        d = describer.describe(ex)
        message = commit_message(ex)
        if message and "message" not in ex.base:
            ex.base["message"] = message  # keep the developer's words for a later re-describe
        ex.prompt, ex.description = d.prompt, d.description
        ex.stats["prompt_source"] = d.source
        audit = check_prompt(d.prompt, ex) if d.source != "fallback" else []
        ex.stats["prompt_leaks"] = audit
        counts["described"] += 1
        counts["by_source"][d.source] = counts["by_source"].get(d.source, 0) + 1
        if is_update_file(d.prompt):
            counts["update_file"] += 1
        if audit:
            counts["leaks"] += 1
        for reason in d.rejected or []:
            key = _reason_key(reason)
            counts["rejected"][key] = counts["rejected"].get(key, 0) + 1
    return counts


def _reason_key(reason: str) -> str:
    """ "diff-summary: names 'x', which …" → "diff-summary: names"; "model error: …" →
    "model error"."""
    source, sep, rest = reason.partition(": ")
    if sep and source in PROMPT_SOURCES:
        return f"{source}: {_reason_key(rest)}"
    return re.split(r"[:('\"]", reason, maxsplit=1)[0].strip()
