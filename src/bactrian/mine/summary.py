"""What a diff means, read from its OCaml/dune content: the definitions it adds, changes and
removes (with their types from the interface), the match cases it adds, the constructors, the
modules it creates or deletes, the tests it adds and what they exercise, the libraries a dune
file gains. From that: a short editor-style prompt ("add a to_string for t", "handle Star in
parse", "add a test for Glob.parse") and a detailed description — never a list of file names.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bactrian.diffs import FilePatch, Hunk
from bactrian.mine.context import is_test_path
from bactrian.mine.parts import DEFINITION
from bactrian.mine.patchview import added, as_patch, removed

OCAML = (".ml", ".mli", ".mll", ".mly")
PER_TYPE = {
    "to_string",
    "of_string",
    "pp",
    "compare",
    "equal",
    "show",
    "hash",
    "to_json",
    "of_json",
}
_CASE = re.compile(r"^\s*\|\s*`?([A-Z][\w']*)\b.*->")
_CTOR = re.compile(r"^\s*(?:type\s+[\w' ]+=\s*)?\|?\s*`?([A-Z][\w']*)\s*(?:of\b.*)?$")
_QUALIFIED = re.compile(r"\b([A-Z][\w']*)\.([a-z_][\w']*)")
_LIBRARIES = re.compile(r"\(libraries\s+([^)]*)\)?")
_STANZA = re.compile(r"^\s*\((test|tests|executable|executables|library)\b")
_NAME = re.compile(r"\((?:name|names|public_name)\s+([\w.-]+)")


def module_name(path: str) -> str:
    stem = posixpath.basename(path).split(".", 1)[0]
    return stem[:1].upper() + stem[1:]


C_SOURCES = (".c", ".h", ".cpp", ".cc")
_C_DEF = re.compile(
    r"^(?!(?:if|else|while|for|return|switch|do|case|typedef)\b)"
    r"(?:(?:static|inline|extern|const|unsigned|signed|struct|enum|CAMLprim)\s+)*"
    r"[A-Za-z_]\w*[\s*]+\**([A-Za-z_]\w*)\s*\([^;]*$"
    r"|^#\s*define\s+([A-Za-z_]\w*)\("  # macros with parameters (not include guards)
)


def _def(line: str, c: bool = False, nested: bool = False) -> str | None:
    """The name a definition line defines: OCaml ``let/val/type/module/…`` (top level only
    unless ``nested``; never a local ``let … in``), or a C function / macro."""
    if c:
        m = _C_DEF.match(line)
        return (m.group(1) or m.group(2)) if m else None
    if line[:1].isspace() and not nested:
        return None
    m = DEFINITION.match(line)
    if not m or m.group(1) == "_" or re.search(r"\bin\s*$", line):
        return None
    return m.group(1)


def _top_def(line: str) -> str | None:
    return _def(line)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


@dataclass
class FileMeaning:
    path: str
    test: bool = False
    new_file: bool = False
    deleted: bool = False
    added_defs: list[str] = field(default_factory=list)
    removed_defs: list[str] = field(default_factory=list)
    changed_defs: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)  # name → type, from `val name : type`
    new_cases: list[tuple[str, str]] = field(default_factory=list)  # (constructor, in def)
    new_ctors: list[tuple[str, str]] = field(default_factory=list)  # (constructor, of type)
    uses: list[str] = field(default_factory=list)  # Module.name the added lines use
    libraries: list[str] = field(default_factory=list)  # dune: libraries added
    stanzas: list[tuple[str, str]] = field(default_factory=list)  # dune: (kind, name) added
    added_n: int = 0
    removed_n: int = 0

    @property
    def ocaml(self) -> bool:
        return self.path.endswith(OCAML)

    @property
    def c(self) -> bool:
        return self.path.endswith(C_SOURCES)

    @property
    def dune(self) -> bool:
        return posixpath.basename(self.path) in ("dune", "dune-project") or self.path.endswith(
            ".opam"
        )


def _kind(line: str) -> str:
    return line.split(None, 1)[0] if line.strip() else ""


def _enclosing(hunk: Hunk, old_text: list[str] | None, c: bool = False) -> list[tuple[str, str]]:
    """Definitions (name, keyword) a hunk's changes sit in (old side): the definition lines
    the hunk removes or rewrites, else the nearest definition above its first change that is
    less indented than the change (a function inside a functor, not the functor) — looked
    for in the hunk's context, then in the old file."""
    names: list[tuple[str, str]] = []
    before: list[str] = []
    first_change: int | None = None
    indent = 0
    old_line = (hunk.old_start or 1) - 1
    for tag, text in hunk.lines:
        line = text.rstrip("\r\n")
        if tag == " ":
            if first_change is None:
                before.append(line)
            old_line += 1
            continue
        if first_change is None:
            first_change = old_line
            indent = _indent(line) if line.strip() else 0
        if tag == "-":
            old_line += 1
            if (d := _def(line, c, nested=True)) and (d, _kind(line)) not in names:
                names.append((d, _kind(line)))
    if names:
        return names
    if indent == 0 and not c:
        return []  # a change at the top level is its own definition
    above = list(reversed(before))
    if old_text is not None and first_change is not None:
        start = min(first_change - len(before), len(old_text))
        above += list(reversed(old_text[: max(start, 0)]))
    if c:
        for line in above:
            if d := _def(line, c):
                return [(d, _kind(line))]
        return []
    # the definitions around the change, innermost first, each less indented than the last;
    # the outermost value among them is what a developer names ("f", not a local "bc" in f,
    # nor the functor f sits in)
    chain: list[tuple[str, str]] = []
    for line in above:
        if not line.strip() or _indent(line) >= indent:
            continue
        d = _def(line, c, nested=True)
        if d:
            chain.append((d, _kind(line)))
            indent = _indent(line)
            if indent == 0:
                break
    values = [x for x in chain if x[1] in ("let", "and", "val", "external", "method")]
    if values:
        return [values[-1]]
    return chain[:1]


def file_meaning(fp: FilePatch, old_text: str | None) -> FileMeaning:
    adds, rems = added(fp), removed(fp)
    m = FileMeaning(
        fp.path,
        test=is_test_path(fp.path),
        new_file=fp.is_new,
        deleted=fp.is_delete,
        added_n=len(adds),
        removed_n=len(rems),
    )
    if m.dune:
        old_libs = {w for line in rems for g in _LIBRARIES.findall(line) for w in g.split()}
        for line in adds:
            for g in _LIBRARIES.findall(line):
                m.libraries += [w for w in g.split() if w not in old_libs and w not in m.libraries]
        for i, line in enumerate(adds):
            s = _STANZA.match(line)
            if s:
                n = _NAME.search(" ".join(adds[i : i + 3]))
                m.stanzas.append((s.group(1), n.group(1) if n else ""))
        return m
    if not m.ocaml and not m.c:
        return m
    is_c = m.c
    added_names = [d for line in adds if (d := _def(line, is_c))]
    removed_names = {d for line in rems if (d := _def(line, is_c))}
    old_lines = old_text.splitlines() if old_text is not None else None
    old_names = {d for line in old_lines or [] if (d := _def(line, is_c, nested=True))}
    for name in added_names:
        if name in removed_names or name in old_names:
            if name not in m.changed_defs:
                m.changed_defs.append(name)
        elif name not in m.added_defs:
            m.added_defs.append(name)
    m.removed_defs = sorted(removed_names - set(added_names))
    for line in adds:
        v = re.match(r"^val\s+([\w']+)\s*:\s*(.+)$", line)
        if v:
            m.types[v.group(1)] = v.group(2).strip()
    removed_cases = {k.group(1) for line in rems if (k := _CASE.match(line))}
    removed_ctors = {k.group(1) for line in rems if (k := _CTOR.match(line))}
    for h in fp.hunks:
        where = _enclosing(h, old_lines, is_c)
        inside, inside_kind = where[0] if where else ("", "")
        # a constructor added to a type that already existed (not a whole new type)
        in_type = inside_kind == "type" and inside in old_names
        for tag, text in h.lines:
            line = text.rstrip("\r\n")
            if tag != "+":
                continue
            if (k := _CASE.match(line)) and k.group(1) not in removed_cases:
                pair = (k.group(1), inside)
                if pair not in m.new_cases:
                    m.new_cases.append(pair)
            elif (
                in_type
                and (k := _CTOR.match(line))
                and "->" not in line
                and k.group(1) not in removed_ctors
            ):
                pair = (k.group(1), inside)
                if pair not in m.new_ctors:
                    m.new_ctors.append(pair)
        for name, _ in where:
            if name not in m.changed_defs and name not in m.added_defs and name in old_names:
                m.changed_defs.append(name)
    m.changed_defs = [d for d in m.changed_defs if d not in m.removed_defs]
    for line in adds:
        for mod, name in _QUALIFIED.findall(line):
            q = f"{mod}.{name}"
            if q not in m.uses:
                m.uses.append(q)
    return m


@dataclass
class Meaning:
    files: list[FileMeaning]
    context: Mapping[str, str] = field(default_factory=dict)

    @property
    def code(self) -> list[FileMeaning]:
        return [f for f in self.files if (f.ocaml or f.c) and not f.test]

    @property
    def tests(self) -> list[FileMeaning]:
        return [f for f in self.files if f.test and (f.ocaml or not f.dune)]

    def new_modules(self) -> list[str]:
        return list(dict.fromkeys(module_name(f.path) for f in self.code if f.new_file and f.ocaml))

    def main_module(self) -> str:
        """The file a change is mostly about (its largest code file, else its first file)."""
        files = self.code or self.files
        if not files:
            return ""
        best = max(files, key=lambda f: f.added_n + f.removed_n)
        return _base(_prefer_ml(best.path))

    def project_modules(self) -> set[str]:
        """Module names of the files the example shows (context and diff)."""
        paths = [f.path for f in self.files] + list(self.context)
        return {module_name(p) for p in paths if p.endswith(OCAML)}

    def defined(self) -> set[str]:
        """Names the change defines (definitions, constructors, new modules): what a prompt may
        name, since asking for them is asking for the change."""
        out: set[str] = set(self.new_modules())
        for f in self.files:
            out.update(f.added_defs)
            out.update(c for c, _ in f.new_ctors)
            out.update(lib for lib in f.libraries)
            out.update(n for _, n in f.stanzas if n)
        return out

    def names(self) -> set[str]:
        """Lower-cased words that say what this change is about (for matching clauses of a
        commit subject to the parts of a split commit)."""
        out: set[str] = set()
        for f in self.files:
            stem = posixpath.basename(f.path).split(".", 1)[0].lower()
            out.add(stem)
            out.update(stem.removeprefix("test_").split("_"))
            for n in [*f.added_defs, *f.changed_defs, *f.removed_defs, *f.libraries]:
                out.add(n.lower())
            out.update(c.lower() for c, _ in [*f.new_cases, *f.new_ctors])
            if f.test:
                out.add("test")
                out.add("tests")
        return {w for w in out if len(w) > 1}

    # -- the short prompt --------------------------------------------------------------
    def prompt(self) -> str | None:
        main = self._main()
        if main is None:
            return None
        if self.code and self.tests and not main.startswith(("add a test", "add tests")):
            if any(f.added_n > f.removed_n or f.new_file for f in self.tests):
                main += " and add a test"
            else:
                main += " and update the tests"
        return main

    def _main(self) -> str | None:
        code = self.code
        mods = self.new_modules()
        if mods:
            text = f"add a {mods[0]} module" if len(mods) == 1 else f"add modules {_and(mods)}"
            users = [
                f for f in code if not f.new_file and any(u.split(".")[0] in mods for u in f.uses)
            ]
            if users:
                text += f" and use it in {_base(users[0].path)}"
            return text
        if code and all(f.deleted for f in code):
            gone = list(dict.fromkeys(module_name(f.path) for f in code))
            return f"remove the {gone[0]} module" if len(gone) == 1 else f"remove {_and(gone)}"
        for f in code:  # one definition removed and another added in its place: a rename
            if len(f.added_defs) == 1 and len(f.removed_defs) == 1 and not f.changed_defs:
                return f"rename {f.removed_defs[0]} to {f.added_defs[0]} in {_base(f.path)}"
        ctors = [(c, t, f) for f in code for c, t in f.new_ctors]
        if ctors:
            c, t, f = ctors[0]
            where = f" of {t}" if t else ""
            return f"add a {c} case to the type{where} in {_base(_prefer_ml(f.path))}"
        new_defs = [(n, f) for f in code for n in f.added_defs]
        if new_defs:
            names = list(dict.fromkeys(n for n, _ in new_defs))
            path = _prefer_ml(new_defs[0][1].path)
            ctx = "\n".join(self.context.values())
            if len(names) == 1 and names[0] in PER_TYPE and re.search(r"\btype t\b", ctx):
                return f"add a {names[0]} for t"
            return f"add {_and(names[:2])} to {_base(path)}"
        known_cases = [(c, d, f) for f in code for c, d in f.new_cases if d]
        if known_cases:
            c, d, f = known_cases[0]
            return f"handle {c} in {d}"
        changed = [(n, f) for f in code for n in f.changed_defs]
        if changed:
            names = list(dict.fromkeys(n for n, _ in changed))
            return f"change {_and(names[:2])} in {_base(_prefer_ml(changed[0][1].path))}"
        removed_defs = [(n, f) for f in code for n in f.removed_defs]
        if removed_defs:
            names = list(dict.fromkeys(n for n, _ in removed_defs))
            return f"remove {_and(names[:2])} from {_base(removed_defs[0][1].path)}"
        if self.tests and not code:
            return self._tests_prompt()
        dune = [f for f in self.files if f.dune]
        libs = [(lib, f) for f in dune for lib in f.libraries]
        if libs:
            lib, f = libs[0]
            return f"depend on {lib} in {_dir(f.path)}"
        stanzas = [(k, n, f) for f in dune for k, n in f.stanzas if n]
        if stanzas:
            k, n, f = stanzas[0]
            kind = {"tests": "test", "executables": "executable"}.get(k, k)
            return f"add the {kind} {n} to {_dir(f.path)}/dune"
        if dune and not code:
            return f"change the dune build of {_dir(dune[0].path)}"
        return None

    def _tests_prompt(self) -> str:
        uses: list[str] = []
        ours = self.project_modules()
        for f in self.tests:
            uses += [u for u in f.uses if u.split(".")[0] in ours]
        uses = list(dict.fromkeys(uses))
        if len(uses) == 1:
            return f"add a test for {uses[0]}"
        mods = list(dict.fromkeys(u.split(".")[0] for u in uses))
        if mods:
            return f"add tests for {_and(mods[:2])}"
        return f"add tests in {_base(self.tests[0].path)}"

    # -- the detailed description ------------------------------------------------------
    def detail(self) -> str:
        lines: list[str] = []
        types: dict[str, str] = {}
        for f in self.files:
            types.update(f.types)
        for f in self.files:
            if f.new_file and f.ocaml:
                lines.append(f"Adds {f.path} (module {module_name(f.path)}).")
            elif f.deleted:
                lines.append(f"Deletes {f.path}.")
            for n in f.added_defs:
                typ = f" : {types[n]}" if n in types else ""
                lines.append(f"Adds {n}{typ} to {f.path}.")
            for n in f.changed_defs:
                lines.append(f"Changes {n} in {f.path}.")
            for n in f.removed_defs:
                lines.append(f"Removes {n} from {f.path}.")
            for c, t in f.new_ctors:
                lines.append(f"Adds the constructor {c}" + (f" to {t}" if t else "") + ".")
            for c, d in f.new_cases:
                lines.append(f"Adds a {c} case" + (f" to {d}" if d else "") + f" in {f.path}.")
            if f.test and f.uses:
                lines.append(f"Tests in {f.path} exercise {', '.join(f.uses[:4])}.")
            for lib in f.libraries:
                lines.append(f"Adds the library {lib} to {f.path}.")
        return "\n".join(dict.fromkeys(lines))


def _and(names: list[str]) -> str:
    return " and ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " and " + names[-1]


def _base(path: str) -> str:
    return posixpath.basename(path)


def _dir(path: str) -> str:
    return posixpath.dirname(path) or "the root"


def _prefer_ml(path: str) -> str:
    return path[:-1] if path.endswith(".mli") else path


def meaning(diff: str, context: Mapping[str, str]) -> Meaning:
    """The :class:`Meaning` of ``diff``; ``context`` holds the base files (for the definitions a
    hunk sits in)."""
    patch = as_patch(diff)
    files = [
        file_meaning(fp, context.get(fp.old_path) if fp.old_path else None) for fp in patch.files
    ]
    return Meaning(files, context)


def stats_lines(diff: str) -> str:
    parts = []
    for fp in as_patch(diff).files:
        a, r = fp.added_removed()
        parts.append(f"{fp.path} (+{a} -{r})")
    return ", ".join(parts)
