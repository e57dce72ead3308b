"""Descriptions: a detailed description of each example's diff and the short editor-style
prompt a developer would type for it.

Describers (one Protocol, registry ``DESCRIBERS``):

- ``deterministic`` — offline, from the diagnostics and the diff ("fix the type error in
  ledger.ml", "add a to_string for t"). The default when no model is configured.
- ``llm`` — two steps through a :class:`~bactrian.models.ModelBackend`: a detailed description,
  then a rewrite into a short imperative prompt. A rewrite that fails the prompt filter or the
  leak check falls back to the deterministic prompt (counted in ``stats["prompt_source"]``).

For fixes the prompt ends with the diagnostics as the editor shows them (``file:line:col:
error: message``), after a blank line.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from bactrian.dataset.example import Example
from bactrian.errors import ModelError
from bactrian.mine.context import is_test_path
from bactrian.mine.parts import DEFINITION
from bactrian.mine.prompts import instruction, leaks, prompt_problems
from bactrian.mine.textdiff import split_files
from bactrian.models import ModelBackend, ModelConfig, load_model_config, make_backend
from bactrian.registry import Registry
from bactrian.types import Diagnostic


@dataclass
class Description:
    prompt: str
    description: str
    source: str  # "deterministic" | "llm" | "llm-fallback"
    rejected: list[str] | None = None


class Describer(Protocol):
    name: str

    def describe(self, example: Example) -> Description: ...


def diagnostics_block(example: Example) -> str:
    diags = [Diagnostic.from_dict(d) for d in example.diagnostics]
    lines = []
    for d in diags:
        msg = d.message.strip()
        lines.append(f"{d.file}:{d.line}:{d.col}: {d.severity.value}: {msg}")
    return "\n".join(lines)


def with_diagnostics(text: str, example: Example) -> str:
    block = diagnostics_block(example) if example.kind == "fix" else ""
    return f"{text}\n\n{block}" if block else text


_FIX_PHRASE = {
    "syntax": "fix the syntax error in {f}",
    "type": "fix the type error in {f}",
    "unbound": "fix the unbound name in {f}",
    "test": "make the failing test in {f} pass",
    "warning": "fix the warning in {f}",
}


class DeterministicDescriber:
    name = "deterministic"

    def describe(self, example: Example) -> Description:
        if example.kind == "fix":
            text = self._fix(example)
        else:
            text = self._change(example)
        detail = self._detail(example, text)
        return Description(with_diagnostics(text, example), detail, self.name)

    def _fix(self, ex: Example) -> str:
        diags = [Diagnostic.from_dict(d) for d in ex.diagnostics]
        errors = [d for d in diags if d.severity.value == "error"] or diags
        if not errors:
            files = [f.path for f in split_files(ex.diff)]
            return f"fix the build in {posixpath.basename(files[0])}" if files else "fix the build"
        first = errors[0]
        name = posixpath.basename(first.file)
        if first.kind == "test" or is_test_path(first.file):
            return _FIX_PHRASE["test"].format(f=name)
        phrase = _FIX_PHRASE.get(first.kind, "fix the error in {f}").format(f=name)
        if len(errors) > 1 and len({d.file for d in errors}) == 1:
            phrase = phrase.replace(" error in", " errors in", 1)
        return phrase

    def _change(self, ex: Example) -> str:
        files = split_files(ex.diff)
        context = "\n".join(ex.files.values())
        new_defs: list[tuple[str, str]] = []
        changed_defs: list[tuple[str, str]] = []
        for f in files:
            if is_test_path(f.path):
                continue
            removed_names = {m.group(1) for line in f.removed if (m := DEFINITION.match(line))}
            for line in f.added:
                m = DEFINITION.match(line)
                if not m or line[:1].isspace():
                    continue
                name = m.group(1)
                bucket = changed_defs if name in removed_names else new_defs
                if (name, f.path) not in bucket:
                    bucket.append((name, f.path))
        tests = [f for f in files if is_test_path(f.path)]
        code_files = [f for f in files if not is_test_path(f.path)]
        and_test = " and add a test" if tests else ""
        if not code_files and files:
            return f"add tests for {_module_of(files[0].path)}"
        if code_files and all(f.deleted for f in code_files):
            return "remove " + ", ".join(_module_of(f.path) for f in code_files)
        if new_defs:
            names = list(dict.fromkeys(n for n, _ in new_defs))
            path = new_defs[0][1]
            if len(names) == 1 and names[0] in _PER_TYPE and "type t" in context:
                return f"add a {names[0]} for t{and_test}"
            return f"add {' and '.join(names[:2])} to {_module_of(path)}{and_test}"
        if changed_defs:
            names = list(dict.fromkeys(n for n, _ in changed_defs))
            return f"change {' and '.join(names[:2])} in {_module_of(changed_defs[0][1])}{and_test}"
        where = ", ".join(_module_of(f.path) for f in code_files[:2])
        return f"update {where}{and_test}"

    def _detail(self, ex: Example, text: str) -> str:
        stats = [f"{f.path} (+{len(f.added)} -{len(f.removed)})" for f in split_files(ex.diff)]
        head = ex.description.strip() or text[0].upper() + text[1:] + "."
        return f"{head}\nFiles: {', '.join(stats)}."


_PER_TYPE = {"to_string", "of_string", "pp", "compare", "equal", "show", "hash", "to_json"}


def _module_of(path: str) -> str:
    return posixpath.basename(path)


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
    parts.append(f"The change (unified diff):\n{ex.diff}")
    return "\n\n".join(parts)[-max_chars:]


class LLMDescriber:
    name = "llm"

    def __init__(self, backend: ModelBackend, fallback: Describer | None = None) -> None:
        self.backend = backend
        self.fallback = fallback or DeterministicDescriber()

    def describe(self, example: Example) -> Description:
        try:
            detail, short = self._ask(example)
        except ModelError as exc:  # one bad reply must not sink a whole mining run
            fb = self.fallback.describe(example)
            return Description(fb.prompt, fb.description, "llm-fallback", [f"model error: {exc}"])
        short = short.strip().strip("\"'`").rstrip(".").strip()
        if short:
            short = short[0].lower() + short[1:]
        problems = check_prompt(short, example)
        if problems:
            fb = self.fallback.describe(example)
            return Description(fb.prompt, detail or fb.description, "llm-fallback", problems)
        return Description(with_diagnostics(short, example), detail, self.name)

    def _ask(self, example: Example) -> tuple[str, str]:
        detail = self.backend.complete(
            [
                {"role": "system", "content": DETAIL_SYSTEM},
                {"role": "user", "content": _render_for_model(example)},
            ],
            max_tokens=400,
        ).text.strip()
        short = self.backend.complete(
            [
                {"role": "system", "content": REWRITE_SYSTEM},
                {"role": "user", "content": detail},
            ],
            max_tokens=40,
            stop=["\n"],
        ).text.strip()
        return detail, short


def check_prompt(prompt: str, example: Example) -> list[str]:
    """Prompt-filter problems plus leaks for ``prompt`` as a prompt of ``example``."""
    text = instruction(prompt)
    return prompt_problems(text) + leaks(text, example.diff, example.files.values())


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
    examples: Iterable[Example], describer: Describer, *, only_missing: bool = False
) -> dict[str, Any]:
    """Set ``prompt``/``description`` on each example in place; returns counts per source and
    per rejection reason."""
    counts: dict[str, Any] = {"described": 0, "by_source": {}, "rejected": {}}
    for ex in examples:
        if only_missing and ex.prompt:
            continue
        d = describer.describe(ex)
        ex.prompt, ex.description = d.prompt, d.description
        ex.stats["prompt_source"] = d.source
        counts["described"] += 1
        counts["by_source"][d.source] = counts["by_source"].get(d.source, 0) + 1
        for reason in d.rejected or []:
            key = reason.split(":")[0].split("(")[0].strip()
            counts["rejected"][key] = counts["rejected"].get(key, 0) + 1
    return counts
