"""Prompt strategies: how an example's context, diagnostics and request are laid out for a
model under a token budget, which edit format the model is asked for, and how its output is
parsed back (through :func:`bactrian.diffs.extract_changes`).

One strategy object renders every prompt of a model's life — SFT examples (with the target
answer in its edit format), RL prompts, evaluation prompts and the AID sidecar's requests — so
the model meets its input laid out exactly as in training::

    strategy = get_strategy("unified-diff")
    rendered = strategy.render(PromptInput.from_example(ex), count=backend.count_tokens,
                               budget=6144)
    rendered.messages, rendered.tokens, rendered.cut           # what was cut is reported
    strategy.sft_messages(ex)                                  # + the assistant target
    strategy.parse(model_output, files).diff                   # back to a unified diff

Strategies (registry :data:`STRATEGIES`): ``unified-diff`` (the default), ``search-replace``
(aider-style SEARCH/REPLACE blocks) and ``whole-file`` (each changed file in full).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bactrian.diffs import apply_to_files, extract_changes, parse_patch
from bactrian.errors import BactrianError, DiffError
from bactrian.registry import Registry

Counter = Callable[[str], int]
DEFAULT_STRATEGY = "unified-diff"


def approx_tokens(text: str) -> int:
    """About four characters a token: the count used when no tokenizer is at hand."""
    return (len(text) + 3) // 4


@dataclass
class PromptInput:
    """What a prompt is built from: the files shown, the build's diagnostics, the request."""

    files: dict[str, str] = field(default_factory=dict)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    prompt: str = ""

    @classmethod
    def from_example(cls, ex: Any) -> PromptInput:
        """From a :class:`bactrian.dataset.example.Example` (prompt, else description)."""
        return cls(dict(ex.files), list(ex.diagnostics), ex.prompt or ex.description)

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> PromptInput:
        """From a sidecar-shaped request ``{"files": {path: text}, "diagnostics": [...],
        "prompt": "..."}`` (``instruction`` is accepted for ``prompt``)."""
        files = request.get("files") or {}
        if not isinstance(files, Mapping):
            raise BactrianError("request 'files' must map paths to file contents")
        return cls(
            {str(k): str(v) for k, v in files.items()},
            list(request.get("diagnostics") or []),
            str(request.get("prompt") or request.get("instruction") or ""),
        )


@dataclass
class RenderedPrompt:
    """Chat messages (system, user) and how the budget went: ``cut`` lists what was left out
    or shortened, ``tokens`` the prompt's size under the counter used."""

    messages: list[dict[str, str]]
    tokens: int
    budget: int | None
    cut: list[str] = field(default_factory=list)
    files_shown: list[str] = field(default_factory=list)

    def digest(self) -> str:
        h = hashlib.sha256()
        for m in self.messages:
            h.update(f"{m['role']}\0{m['content']}\0".encode())
        return h.hexdigest()[:16]


@dataclass
class ParsedOutput:
    """A model output read back: ``diff`` is the unified diff it proposes ("" when none);
    ``well_formed`` is False when the output holds no readable edit (``error`` says why)."""

    diff: str
    well_formed: bool
    formats: list[str] = field(default_factory=list)
    error: str | None = None


class Strategy:
    """The default layout (``unified-diff``). Subclasses change the system prompt and the
    target rendering; the context layout and the budget logic are shared."""

    name = DEFAULT_STRATEGY
    edit_format = "unified-diff"
    # tool calls the AID sidecar lets the model make per proposal under this strategy
    # (bactrian.aid.toolloop); 0, the default, keeps the prompt byte-identical to training's
    tool_calls = 0
    system = (
        "You are a coding assistant inside the developer's editor. Answer the request with a "
        "unified diff (git style) against the files shown, and nothing else."
    )

    # --- layout -------------------------------------------------------------------------
    def file_block(self, path: str, text: str) -> str:
        return f"File {path}:\n```\n{text}```"

    def request_block(self, prompt: str) -> str:
        return f"Request: {prompt}"

    def user_text(self, files: Mapping[str, str], prompt: str) -> str:
        parts = [self.file_block(p, t) for p, t in files.items()]
        parts.append(self.request_block(prompt))
        return "\n\n".join(parts)

    def _messages(self, files: Mapping[str, str], prompt: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user_text(files, prompt)},
        ]

    def render(
        self, inp: PromptInput, *, count: Counter | None = None, budget: int | None = None
    ) -> RenderedPrompt:
        """Lay ``inp`` out. With a ``budget`` (tokens, counted by ``count``, default
        :func:`approx_tokens`), files are dropped — those the diagnostics do not name first,
        the largest first — and then the last kept file is shortened around the first
        diagnostic; every cut is reported."""
        count = count or approx_tokens

        def size(files: Mapping[str, str]) -> int:
            return sum(count(m["content"]) for m in self._messages(files, inp.prompt))

        files = dict(inp.files)
        cut: list[str] = []
        total = size(files)
        if budget is not None and total > budget:
            named = {str(d.get("file", "")) for d in inp.diagnostics}
            order = sorted(files, key=lambda p: (p in named, -len(files[p])))
            for path in order[:-1] if len(order) > 1 else []:
                if total <= budget:
                    break
                cut.append(f"{path}: left out ({count(files[path])} tokens)")
                del files[path]
                total = size(files)
            if total > budget and files:
                path = next(iter(files))
                text, note = self._shorten(
                    path, files[path], inp, count, budget - (total - count(files[path]))
                )
                files[path] = text
                cut.append(note)
                total = size(files)
        messages = self._messages(files, inp.prompt)
        return RenderedPrompt(messages, total, budget, cut, list(files))

    def _shorten(
        self, path: str, text: str, inp: PromptInput, count: Counter, room: int
    ) -> tuple[str, str]:
        lines = text.splitlines(keepends=True)
        focus = next(
            (int(d.get("line", 1)) - 1 for d in inp.diagnostics if d.get("file") == path), 0
        )
        lo = hi = max(0, min(focus, len(lines) - 1)) if lines else 0
        kept = "".join(lines[lo : hi + 1])
        while lines and (lo > 0 or hi < len(lines) - 1):
            nlo, nhi = max(0, lo - 1), min(len(lines) - 1, hi + 1)
            candidate = "".join(lines[nlo : nhi + 1])
            if count(candidate) > max(room, 0):
                break
            lo, hi, kept = nlo, nhi, candidate
        return kept, f"{path}: shortened to lines {lo + 1}-{hi + 1} of {len(lines)}"

    def render_input(self, ex: Any, **kwargs: Any) -> RenderedPrompt:
        """:meth:`render` of an example."""
        return self.render(PromptInput.from_example(ex), **kwargs)

    # --- SFT target -----------------------------------------------------------------------
    def target(self, ex: Any) -> str:
        """The answer the model should give for example ``ex``, in this edit format."""
        return str(ex.diff)

    def sft_messages(
        self, ex: Any, *, count: Counter | None = None, budget: int | None = None
    ) -> list[dict[str, str]]:
        rendered = self.render(PromptInput.from_example(ex), count=count, budget=budget)
        return [*rendered.messages, {"role": "assistant", "content": self.target(ex)}]

    # --- parsing --------------------------------------------------------------------------
    def parse(self, output: str, files: Mapping[str, str] | None = None) -> ParsedOutput:
        """Read a model output back into a unified diff through ``extract_changes``."""
        try:
            changes = extract_changes(output, files or {})
        except DiffError as exc:
            return ParsedOutput("", False, [], str(exc))
        if not changes:
            return ParsedOutput("", False, [], "the output holds no code change")
        return ParsedOutput(changes.render(), True, list(changes.formats))


class SearchReplaceStrategy(Strategy):
    name = "search-replace"
    edit_format = "search-replace"
    system = (
        "You are a coding assistant inside the developer's editor. Answer the request with "
        "SEARCH/REPLACE blocks: for each edit, a line with the file's path, then\n"
        "<<<<<<< SEARCH\n(the exact current lines)\n=======\n(the new lines)\n>>>>>>> REPLACE\n"
        "and nothing else."
    )

    def target(self, ex: Any) -> str:
        try:
            patch = parse_patch(ex.diff)
        except DiffError:
            return str(ex.diff)
        out = []
        for fp in patch.files:
            if fp.new_path is None or fp.is_rename or fp.binary or not _labelable(fp.path):
                # deletions, renames and paths that read as prose have no search/replace form
                return str(ex.diff)
            for hunk in fp.hunks:
                search = "" if fp.is_new else "".join(hunk.old_lines)
                replace = "".join(hunk.new_lines)
                out.append(
                    f"{fp.path}\n<<<<<<< SEARCH\n{_nl(search)}=======\n{_nl(replace)}>>>>>>> REPLACE\n"
                )
        return "\n".join(out)


class WholeFileStrategy(Strategy):
    name = "whole-file"
    edit_format = "whole-file"
    system = (
        "You are a coding assistant inside the developer's editor. Answer the request by "
        "writing out every file you change in full: the file's path on a line, then the "
        "whole new contents in a fenced code block. Nothing else."
    )

    def target(self, ex: Any) -> str:
        try:
            new_files, _ = apply_to_files(dict(ex.files), ex.diff)
        except (DiffError, BactrianError):
            return str(ex.diff)
        out = []
        for path in parse_patch(ex.diff).files:
            if path.new_path is None or not _labelable(path.path):
                return str(ex.diff)
            text = new_files.get(path.path, b"")
            body = text.decode() if isinstance(text, bytes) else str(text)
            out.append(f"{path.path}\n```\n{_nl(body)}```\n")
        return "\n".join(out)


def _labelable(path: str) -> bool:
    """Whether ``path`` on a line of its own reads as a file name to ``extract_changes``."""
    return "/" in path or "." in path


def _nl(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


STRATEGIES: Registry[Callable[[], Strategy]] = Registry("prompt strategy")
STRATEGIES.add("unified-diff", Strategy)
STRATEGIES.add("search-replace", SearchReplaceStrategy)
STRATEGIES.add("whole-file", WholeFileStrategy)


def get_strategy(name: str = DEFAULT_STRATEGY) -> Strategy:
    """The strategy ``name`` (an unknown name says "Did you mean" and lists them)."""
    return STRATEGIES.get(name or DEFAULT_STRATEGY)()
