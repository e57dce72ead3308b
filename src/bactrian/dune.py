"""What a dune project says about itself, read without running dune: the one place that
detects a dune project, reads ``dune`` files (libraries, executables, tests, their ``modules``
fields, ``ocamllex``/``ocamlyacc``/``menhir`` and rules such as cppo that generate ``.ml``
files), maps positions in generated files back to their sources through line directives
(``# 1 "lib/read.mll"``), reads why a dune build is red (``Library "core_bench" not found``)
and describes a narrower build scope (``--only-packages``, excluded directories) that avoids
the broken part. Used by the miner (context, labels), the CES, the build probe and
``bactrian doctor``.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.buildstatus.diagnostics import parse_ocaml
from bactrian.buildstatus.workspace import is_dune_project

Sexp = str | list["Sexp"]

__all__ = ["is_dune_project"]  # detected in bactrian.buildstatus.workspace, re-exported here

SOURCE_EXTS = (".ml", ".mli", ".mll", ".mly", ".re", ".rei")
STANZAS = {
    "library": "library",
    "executable": "executable",
    "executables": "executable",
    "test": "test",
    "tests": "test",
}


DUNE_PROJECT = "dune-project"


def lists_dune_project(paths: Iterable[str]) -> bool:
    """:func:`is_dune_project` on a tree's file list (a revision, a snapshot)."""
    return DUNE_PROJECT in set(paths)


def is_dune_file(path: str) -> bool:
    return posixpath.basename(path) == "dune"


# ---------------------------------------------------------------- s-expressions


_TOKEN = re.compile(r'\s+|;[^\n]*|#\||#;|\(|\)|"(?:[^"\\]|\\.)*"|[^\s()";]+', re.S)


def parse_sexps(text: str) -> list[Sexp]:
    """The s-expressions of a dune file (comments ``;``, ``#| |#`` and ``#;`` dropped).
    Unbalanced input is read as far as it goes; never raises."""
    stack: list[list[Sexp]] = [[]]
    skip_next: list[int] = []  # depths at which the next complete sexp is dropped (#;)
    pos = 0
    n = len(text)

    def add(item: Sexp) -> None:
        depth = len(stack)
        if skip_next and skip_next[-1] == depth:
            skip_next.pop()
            return
        stack[-1].append(item)

    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            pos += 1
            continue
        tok = m.group(0)
        pos = m.end()
        if tok[0].isspace() or tok[0] == ";":
            continue
        if tok == "#|":
            end = text.find("|#", pos)
            pos = n if end < 0 else end + 2
        elif tok == "#;":
            skip_next.append(len(stack))
        elif tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) > 1:
                item = stack.pop()
                add(item)
        elif tok[0] == '"':
            add(_unquote(tok))
        else:
            add(tok)
    while len(stack) > 1:  # unclosed: keep what was read
        item = stack.pop()
        stack[-1].append(item)
    return stack[0]


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)


def _atoms(x: Sexp) -> list[str]:
    if isinstance(x, str):
        return [x]
    out: list[str] = []
    for y in x:
        out += _atoms(y)
    return out


def _field(stanza: list[Sexp], name: str) -> list[Sexp] | None:
    for item in stanza[1:]:
        if isinstance(item, list) and item and item[0] == name:
            return item[1:]
    return None


def eval_ordered_set(expr: list[Sexp], standard: set[str]) -> set[str]:
    """dune's ordered set language over lowercase module names (``:standard \\ foo``)."""
    out: set[str] = set()
    minus = False
    for item in expr:
        if item == "\\":
            minus = True
            continue
        if isinstance(item, list):
            val = eval_ordered_set(item, standard)
        elif item == ":standard":
            val = set(standard)
        elif item.startswith(":") or item.startswith("%"):
            val = set()
        else:
            val = {item.lower()}
        out = out - val if minus else out | val
    return out


# ---------------------------------------------------------------- the index


def module_name(path: str) -> str | None:
    """``lib/read.mll`` → ``read``; ``None`` for what is not an OCaml module source (or a name
    dune does not take as a module, such as ``foo.cppo.ml``)."""
    base = posixpath.basename(path)
    stem, dot, ext = base.rpartition(".")
    if not dot or "." + ext not in SOURCE_EXTS or not stem:
        return None
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_']*", stem):
        return None
    return stem.lower()


def capitalized(module: str) -> str:
    return module[:1].upper() + module[1:]


@dataclass
class Component:
    """One library, executable(s) or test(s) stanza."""

    kind: str  # library | executable | test
    names: list[str]
    dir: str  # "" for the root
    dune_file: str
    public_names: list[str] = field(default_factory=list)
    libraries: list[str] = field(default_factory=list)
    package: str | None = None
    modules: set[str] = field(default_factory=set)  # lowercase module names
    modules_field: list[Sexp] | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {' '.join(self.names)} ({self.dir or '.'})"

    def library_names(self) -> set[str]:
        return set(self.names) | set(self.public_names) if self.kind == "library" else set()


class DuneIndex:
    """The stanzas of a tree, from its file list and its ``dune`` files' texts."""

    def __init__(self, paths: Iterable[str], dune_texts: Mapping[str, str]) -> None:
        self.paths = sorted(set(paths))
        self.components: list[Component] = []
        self.generated: dict[str, str] = {}  # generated .ml/.mli → its source
        self.include_subdirs: set[str] = set()
        self.excluded_dirs: set[str] = set()  # data_only_dirs, dirs (:standard \ x)
        per_dir: dict[str, list[Component]] = {}
        for dune_file in sorted(dune_texts):
            d = posixpath.dirname(dune_file)
            for comp in self._read(dune_file, d, dune_texts[dune_file]):
                per_dir.setdefault(d, []).append(comp)
                self.components.append(comp)
        self._by_dir_files: dict[str, list[str]] = {}
        for p in self.paths:
            self._by_dir_files.setdefault(self._owner_dir(posixpath.dirname(p)), []).append(p)
        for d, comps in per_dir.items():
            standard = self._dir_modules(d)
            explicit: set[str] = set()
            for c in comps:
                if c.modules_field is not None:
                    c.modules = eval_ordered_set(c.modules_field, standard)
                    explicit |= c.modules
            for c in comps:
                if c.modules_field is None:
                    c.modules = standard - explicit
        self._src_for = {v: k for k, v in self.generated.items()}
        self._module_files: dict[tuple[str, str], list[str]] = {}
        for d, files in self._by_dir_files.items():
            for p in files:
                name = self.module_name(p)
                if name:
                    self._module_files.setdefault((d, name), []).append(p)

    @classmethod
    def from_reader(cls, paths: Iterable[str], read: Any) -> DuneIndex:
        """``read(paths) -> {path: bytes}`` reads the ``dune`` files of ``paths``."""
        paths = list(paths)
        dune_files = [p for p in paths if is_dune_file(p)]
        raw = read(dune_files) if dune_files else {}
        texts = {p: v.decode("utf-8", "replace") for p, v in raw.items()}
        return cls(paths, texts)

    @classmethod
    def from_dir(cls, root: Path) -> DuneIndex:
        root = Path(root)
        paths = [
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and not ({"_build", ".git", ".hg", "_opam"} & set(p.parts))
        ]
        return cls.from_reader(paths, lambda ps: {p: (root / p).read_bytes() for p in ps})

    # -- reading dune files
    def _read(self, dune_file: str, d: str, text: str) -> list[Component]:
        out: list[Component] = []
        for stanza in parse_sexps(text):
            if not isinstance(stanza, list) or not stanza or not isinstance(stanza[0], str):
                continue
            head = stanza[0]
            if head in STANZAS:
                names = _atoms(_field(stanza, "names") or _field(stanza, "name") or [])
                publics = _atoms(
                    _field(stanza, "public_names") or _field(stanza, "public_name") or []
                )
                pkg = _atoms(_field(stanza, "package") or [])
                if not pkg and publics and head in ("library",):
                    pkg = [publics[0].split(".")[0]]
                out.append(
                    Component(
                        kind=STANZAS[head],
                        names=names,
                        dir=d,
                        dune_file=dune_file,
                        public_names=publics,
                        libraries=[
                            a
                            for a in _atoms(_field(stanza, "libraries") or [])
                            if not a.startswith(("(", ":", "%"))
                        ],
                        package=pkg[0] if pkg else None,
                        modules_field=_field(stanza, "modules"),
                    )
                )
            elif head in ("ocamllex", "ocamlyacc", "menhir"):
                mods = _field(stanza, "modules")
                names = _atoms(mods) if mods is not None else _atoms(stanza[1:])
                src_ext = ".mll" if head == "ocamllex" else ".mly"
                for name in names:
                    src = posixpath.join(d, name + src_ext)
                    self.generated[posixpath.join(d, name + ".ml")] = src
                    if head != "ocamllex":
                        self.generated[posixpath.join(d, name + ".mli")] = src
            elif head == "rule":
                self._read_rule(stanza, d)
            elif head == "include_subdirs" and "unqualified" in _atoms(stanza[1:]):
                self.include_subdirs.add(d)
            elif head == "data_only_dirs":
                for name in _atoms(stanza[1:]):
                    self.excluded_dirs.add(posixpath.join(d, name))
        return out

    def _read_rule(self, stanza: list[Sexp], d: str) -> None:
        targets = _atoms(_field(stanza, "targets") or _field(stanza, "target") or [])
        deps = [a for a in _atoms(_field(stanza, "deps") or []) if not a.startswith(("%", ":"))]
        action = _field(stanza, "action")
        if not targets and action is not None:  # (with-stdout-to x.ml ...)
            flat = _atoms(action)
            for i, a in enumerate(flat[:-1]):
                if a == "with-stdout-to":
                    targets = [flat[i + 1]]
        if not deps and action is not None:
            deps = [a for a in _atoms(action) if a.endswith(SOURCE_EXTS) and a not in targets]
        for t in targets:
            if not t.endswith(SOURCE_EXTS):
                continue
            src = next((x for x in deps if x.endswith(SOURCE_EXTS) or ".cppo" in x), None)
            if src:
                self.generated[posixpath.join(d, t)] = posixpath.normpath(posixpath.join(d, src))

    # -- modules and components
    def _owner_dir(self, d: str) -> str:
        """The directory whose stanzas own files in ``d``: the highest ancestor (or ``d``)
        with ``(include_subdirs unqualified)``, else ``d``."""
        if not self.include_subdirs:
            return d
        parts = d.split("/") if d else []
        for i in range(len(parts) + 1):
            a = "/".join(parts[:i])
            if a in self.include_subdirs:
                return a
        return d

    def _dir_modules(self, d: str) -> set[str]:
        names = {self.module_name(p) for p in self._by_dir_files.get(d, [])}
        names |= {
            self.module_name(g)
            for g in self.generated
            if self._owner_dir(posixpath.dirname(g)) == d
        }
        return {n for n in names if n}

    def module_name(self, path: str) -> str | None:
        return module_name(path)

    def component_of(self, path: str) -> Component | None:
        """The stanza ``path`` (a source, generated file or cppo input) belongs to."""
        name = self.module_name(path) or self.module_name(self._src_for.get(path, ""))
        if name is None:
            return None
        d = self._owner_dir(posixpath.dirname(path))
        here = [c for c in self.components if c.dir == d]
        for c in here:
            if name in c.modules:
                return c
        # a module the tree does not have yet (a new file): the stanza that takes the rest
        open_ = [
            c for c in here if c.modules_field is None or ":standard" in _atoms(c.modules_field)
        ]
        return open_[0] if len(open_) == 1 else None

    def module_files(self, comp: Component, module: str) -> list[str]:
        """The source files of ``module`` in ``comp``: ``.ml``, ``.mli``, ``.mll``, ``.mly``
        and any rule input (cppo) that generates them, as they exist in the tree."""
        files = list(self._module_files.get((comp.dir, module), []))
        for gen, src in self.generated.items():
            here = self._owner_dir(posixpath.dirname(gen)) == comp.dir
            if here and module_name(gen) == module and src in self.paths:
                files.append(src)
        existing = set(self.paths)
        return sorted({f for f in files if f in existing})

    def files_of(self, comp: Component) -> list[str]:
        out: list[str] = []
        for m in sorted(comp.modules):
            out += self.module_files(comp, m)
        return out

    def source_of(self, path: str) -> str | None:
        """The source a generated file comes from (``lib/read.ml`` → ``lib/read.mll``)."""
        return self.generated.get(path)

    def dependents(self, comp: Component) -> list[Component]:
        """Components whose ``libraries`` name ``comp`` (tests first)."""
        names = comp.library_names()
        if not names:
            return []
        deps = [c for c in self.components if c is not comp and names & set(c.libraries)]
        return sorted(deps, key=lambda c: (c.kind != "test", c.dir))

    def packages(self) -> set[str]:
        pkgs = {posixpath.basename(p)[: -len(".opam")] for p in self.paths if p.endswith(".opam")}
        pkgs |= {c.package for c in self.components if c.package}
        return pkgs


def strip_build_dir(path: str) -> str:
    """``_build/default/lib/read.ml`` → ``lib/read.ml``; other paths unchanged."""
    parts = path.removeprefix("./").split("/")
    if len(parts) > 2 and parts[0] == "_build":
        return "/".join(parts[2:])
    return "/".join(parts)


# ---------------------------------------------------------------- line directives

_DIRECTIVE = re.compile(r'^#\s*(?:line\s+)?(\d+)\s+"((?:[^"\\]|\\.)*)"')


def map_line(
    generated: str, line: int, generated_path: str | None = None
) -> tuple[str, int] | None:
    """The (source file, line) that line ``line`` (1-based) of a generated file comes from,
    through the last line directive above it; ``None`` when that stretch is the generator's
    own code (no directive, or a directive back to the generated file itself)."""
    last: tuple[int, int, str] | None = None  # (directive's line no, its number, file)
    for i, text in enumerate(generated.splitlines(), start=1):
        if i >= line:
            break
        m = _DIRECTIVE.match(text)
        if m:
            last = (i, int(m[1]), m[2])
    if last is None:
        return None
    at, number, file = last
    file = strip_build_dir(file)
    if generated_path is not None and posixpath.basename(file) == posixpath.basename(
        generated_path
    ):
        return None
    return file, number + (line - at - 1)


GENERATORS: dict[str, list[str]] = {
    ".mll": ["ocamllex", "-q", "-o", "{out}", "{src}"],
    ".mly": ["ocamlyacc", "-b", "{stem}", "{src}"],
}


def regenerate(source_path: str, source_text: bytes, generated_path: str) -> str | None:
    """Run the generator of ``source_path`` (ocamllex, ocamlyacc) on ``source_text`` in a
    scratch directory, as dune does from its build root, and return ``generated_path``'s text
    (its line directives name ``source_path``); ``None`` when that is not possible."""
    ext = posixpath.splitext(source_path)[1]
    argv = GENERATORS.get(ext)
    if argv is None or shutil.which(argv[0]) is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bactrian-gen-") as tmp:
        src = Path(tmp) / source_path
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(source_text)
        stem = posixpath.splitext(source_path)[0]
        cmd = [
            a.format(out=posixpath.splitext(source_path)[0] + ".ml", src=source_path, stem=stem)
            for a in argv
        ]
        try:
            subprocess.run(cmd, cwd=tmp, capture_output=True, timeout=30, check=True)
            return (Path(tmp) / generated_path).read_text("utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            return None


# ---------------------------------------------------------------- why a build is red


@dataclass
class Cause:
    """One reason a dune build is red."""

    kind: str  # missing-library | missing-program | error
    dir: str  # the directory whose stanza fails ("" = root)
    file: str
    name: str  # the missing library or program, or ""
    message: str

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "dir": self.dir,
            "file": self.file,
            "name": self.name,
            "message": self.message,
        }

    def headline(self) -> str:
        where = f"{self.dir}/" if self.dir else "the root"
        if self.kind == "missing-library":
            return f'{where} needs library "{self.name}", not installed: {self.message}'
        if self.kind == "missing-program":
            return f'{where} needs program "{self.name}", not installed: {self.message}'
        return f"{self.file}: {self.message}"


_MISSING_LIB = re.compile(r'Library "([^"]+)" not found')
_MISSING_PROG = re.compile(r"Program (\S+) not found")


def red_causes(output: str) -> list[Cause]:
    """Why a dune build failed, from its output: missing libraries and programs first (with
    the directory of the stanza that needs them), then other errors, one per directory."""

    out: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for d in parse_ocaml(output):
        if d.severity.value != "error":
            continue
        first = " ".join(d.message.split())[:200]
        m0 = _MISSING_LIB.search(d.message) or _MISSING_PROG.search(d.message)
        if m0:
            first = m0[0] + "."
        file = strip_build_dir(d.file)
        dir_ = posixpath.dirname(file)
        m = _MISSING_LIB.search(d.message)
        p = _MISSING_PROG.search(d.message)
        if m:
            cause = Cause("missing-library", dir_, file, m[1], first)
        elif p:
            cause = Cause("missing-program", dir_, file, p[1], first)
        else:
            cause = Cause("error", dir_, file, "", first)
        key = (cause.kind, cause.dir if cause.kind == "error" else cause.dir + cause.name)
        if key in seen:
            continue
        seen.add(key)
        out.append(cause)
    if not out:
        for m in _MISSING_LIB.finditer(output):
            out.append(Cause("missing-library", "", "", m[1], m[0]))
    out.sort(key=lambda c: c.kind == "error")
    return out


# ---------------------------------------------------------------- build scopes


@dataclass
class BuildScope:
    """Which part of a dune project to build: only some packages, and/or every directory but
    some (as directory-scoped aliases ``@lib/check @test/check``)."""

    only_packages: list[str] = field(default_factory=list)
    exclude_dirs: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.only_packages and not self.exclude_dirs

    def to_dict(self) -> dict[str, list[str]]:
        return {"only_packages": list(self.only_packages), "exclude_dirs": list(self.exclude_dirs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BuildScope:
        return cls(
            only_packages=[str(x) for x in d.get("only_packages") or []],
            exclude_dirs=[str(x).strip("/") for x in d.get("exclude_dirs") or []],
        )

    def describe(self) -> str:
        bits = []
        if self.only_packages:
            bits.append("--only-packages " + ",".join(self.only_packages))
        for d in self.exclude_dirs:
            bits.append(f"--exclude-dir {d}")
        return " ".join(bits) or "the whole project"

    def dune_args(self) -> list[str]:
        return ["--only-packages", ",".join(self.only_packages)] if self.only_packages else []

    def targets(self, alias: str, files: Iterable[str]) -> list[str]:
        """Targets building ``alias`` everywhere except the excluded directories:
        ``@alias`` when nothing is excluded, else ``@dir/alias`` for each directory that
        holds dune files and is not (under) an excluded one, ``@@dir/alias`` for a directory
        that has excluded ones below it."""
        if not self.exclude_dirs:
            return [f"@{alias}"]
        dune_dirs = {posixpath.dirname(p) for p in files if is_dune_file(p)}
        excluded = [d.strip("/") for d in self.exclude_dirs]

        def under(d: str, top: str) -> bool:
            return d == top or d.startswith(top + "/") or top == ""

        dune_dirs = {d for d in dune_dirs if not any(under(d, x) for x in excluded)}
        out: list[str] = []

        def visit(d: str) -> None:
            below = [x for x in excluded if x != d and under(x, d)]
            if not below:
                if any(under(x, d) for x in dune_dirs):
                    out.append(f"@{d}/{alias}" if d else f"@{alias}")
                return
            if d in dune_dirs:
                out.append(f"@@{d}/{alias}" if d else f"@@{alias}")
            prefix = d + "/" if d else ""
            children = sorted(
                {
                    x[len(prefix) :].split("/", 1)[0]
                    for x in dune_dirs
                    if x.startswith(prefix) and x != d
                }
            )
            for child in children:
                visit(prefix + child)

        visit("")
        return out

    def command(self, alias: str, files: Iterable[str], *, jobs: int | None = None) -> str:
        """``dune build --root . [-j N] [--only-packages P] TARGETS 2>&1``."""
        targets = self.targets(alias, files)
        if not targets:
            return "true"
        argv = ["dune", "build", "--root", "."]
        if jobs:
            argv += ["-j", str(jobs)]
        argv += self.dune_args() + targets
        return shlex.join(argv) + " 2>&1"


def failing_components(cause: Cause, index: DuneIndex) -> list[Component]:
    """The stanzas a cause is about: those of its directory that name the missing library
    (or program), else every stanza of the directory."""
    here = [c for c in index.components if c.dir == cause.dir]
    if cause.name:
        named = [c for c in here if cause.name in c.libraries]
        if named:
            return named
    return here


def suggest_scopes(causes: list[Cause], index: DuneIndex) -> list[BuildScope]:
    """Scopes that leave out what ``causes`` name, best first:

    1. the failing stanzas' packages left out (``--only-packages`` the others) and the
       directories of failing stanzas that belong to no package excluded — so a broken
       optional package in ``lib/`` (``eqaf-cstruct`` needing ``cstruct``) does not take the
       main library in ``lib/`` with it;
    2. every failing directory excluded.

    A compile error in a library is the code itself, not an optional part: no scope is
    suggested for it (tests, benchmarks and executables with errors may be left out)."""
    causes = [
        c
        for c in causes
        if c.kind != "error" or not any(x.kind == "library" for x in failing_components(c, index))
    ]
    bad_dirs = sorted({c.dir for c in causes if c.dir or c.file})
    if not bad_dirs:
        return []
    out: list[BuildScope] = []
    bad_pkgs: set[str] = set()
    loose_dirs: set[str] = set()
    for cause in causes:
        comps = failing_components(cause, index)
        if comps and all(c.package for c in comps):
            bad_pkgs |= {c.package for c in comps if c.package}
        else:
            loose_dirs.add(cause.dir)
    keep = sorted(index.packages() - bad_pkgs)
    if bad_pkgs and keep:
        out.append(BuildScope(only_packages=keep, exclude_dirs=_tops(sorted(loose_dirs))))
    tops = _tops(bad_dirs)
    if tops and BuildScope(exclude_dirs=tops) not in out:
        out.append(BuildScope(exclude_dirs=tops))
    return out


def _tops(dirs: list[str]) -> list[str]:
    return [d for d in dirs if d and not any(d.startswith(o + "/") for o in dirs if o)]
