"""The dune stanzas of a base, read once when it is warmed.

What the CES needs from them:

- **test suites**: every ``(test)``/``(tests)`` stanza (its directory, executable names and the
  runner its libraries name: ``alcotest``, ``ounit2``, ``ounit1`` or ``plain``) and every library
  with ``(inline_tests)`` (runner ``inline``) — so the test guard knows which suites must run;
- **preprocessing**: which ``.ml``/``.mli`` files go through a preprocessor — ``(pps …)`` (a
  ppx: the parse stage defers them to ``typecheck``) or ``(action (run %{bin:cppo} …))``-style
  actions (run through that command before parsing);
- **generated sources**: ``(ocamllex …)``, ``(ocamlyacc …)`` and ``(menhir …)`` modules.

The s-expressions come from :func:`bactrian.dune.parse_sexps` (the one dune reader, shared
with the miner); an unbalanced dune file is read as far as it goes (dune itself reports it in
``typecheck``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.dune import Sexp, parse_sexps

SKIP_DIRS = {"_build", "_opam", ".git", ".hg", ".jj", "node_modules", "_esy"}

RUNNER_LIBRARIES: dict[str, str] = {
    "alcotest": "alcotest",
    "alcotest-lwt": "alcotest",
    "alcotest-async": "alcotest",
    "alcotest.engine": "alcotest",
    "ounit2": "ounit2",
    "ounit2.advanced": "ounit2",
    "ounit2.threads": "ounit2",
    "ounit": "ounit1",
    "oUnit": "ounit1",
    "oUnit.advanced": "ounit1",
}
"""A test stanza's runner, from the first of its libraries named here (else ``plain``)."""


def _fields(stanza: list[Sexp]) -> dict[str, list[Sexp]]:
    out: dict[str, list[Sexp]] = {}
    for item in stanza[1:]:
        if isinstance(item, list) and item and isinstance(item[0], str):
            out[item[0]] = item[1:]
    return out


def _atoms(items: list[Sexp]) -> list[str]:
    """The plain atoms of a field, flattening ``(:standard …)``-style lists, dropping
    ``:standard``, ``\\`` and ``(select …)`` forms."""
    out: list[str] = []
    for it in items:
        if isinstance(it, str):
            if not it.startswith(":") and it != "\\":
                out.append(it)
        elif it and it[0] != "select":
            out.extend(_atoms(it))
    return out


@dataclass
class Suite:
    """One test stanza (or a library's inline tests)."""

    dir: str  # relative to the tree root, "" for the root
    names: list[str]
    runner: str  # "alcotest" | "ounit2" | "ounit1" | "plain" | "inline"

    def key(self) -> str:
        return f"{self.dir or '.'}:{','.join(self.names)}"

    def to_dict(self) -> dict[str, Any]:
        return {"dir": self.dir, "names": list(self.names), "runner": self.runner}


@dataclass
class Preprocess:
    """How one stanza preprocesses which modules."""

    kind: str  # "pps" | "action" | "future_syntax"
    command: list[Sexp] = field(default_factory=list)  # the (action …) form for "action"
    modules: set[str] | None = None  # None = every module of the stanza


@dataclass
class DirInfo:
    modules: set[str] | None = None  # the union of the stanzas' (modules …); None = all
    preprocess: list[tuple[set[str] | None, Preprocess]] = field(default_factory=list)
    ocamllex: set[str] = field(default_factory=set)
    ocamlyacc: set[str] = field(default_factory=set)
    menhir: set[str] = field(default_factory=set)


@dataclass
class Stanzas:
    """What the CES reads from a base's dune files (see the module docstring)."""

    suites: list[Suite] = field(default_factory=list)
    dirs: dict[str, DirInfo] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def preprocess_of(self, path: str) -> Preprocess | None:
        """The preprocessing that applies to source ``path`` (``.ml``/``.mli``), if any."""
        d, _, base = path.rpartition("/")
        info = self.dirs.get(d)
        if info is None:
            return None
        mod = base.rsplit(".", 1)[0].lower()
        for stanza_mods, pp in info.preprocess:
            if stanza_mods is not None and mod not in stanza_mods:
                continue
            if pp.modules is not None and mod not in pp.modules:
                continue
            return pp
        return None

    def generator_of(self, path: str) -> str | None:
        """``ocamllex``/``ocamlyacc``/``menhir`` when ``path`` is one of their inputs."""
        d, _, base = path.rpartition("/")
        info = self.dirs.get(d)
        stem, _, ext = base.rpartition(".")
        if info is None:
            return None
        if ext == "mll" and stem in info.ocamllex:
            return "ocamllex"
        if ext == "mly" and stem in info.menhir:
            return "menhir"
        if ext == "mly" and stem in info.ocamlyacc:
            return "ocamlyacc"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"suites": [s.to_dict() for s in self.suites], "unreadable": self.unreadable}


def _modules_field(fields: dict[str, list[Sexp]]) -> set[str] | None:
    if "modules" not in fields:
        return None
    raw = fields["modules"]
    if any(isinstance(x, str) and x == ":standard" for x in raw):
        return None
    return {m.lower() for m in _atoms(raw)}


def _preprocess(spec: list[Sexp]) -> list[Preprocess]:
    if not spec:
        return []
    head = spec[0]
    if isinstance(head, str):
        if head == "future_syntax":
            return [Preprocess("future_syntax")]
        return []  # no_preprocessing
    if not head:
        return []
    kind = head[0]
    if kind == "pps" or kind == "staged_pps":
        return [Preprocess("pps")]
    if kind == "action":
        return [Preprocess("action", command=head[1:])]
    if kind == "future_syntax":
        return [Preprocess("future_syntax")]
    if kind == "per_module":
        out = []
        for entry in head[1:]:
            if isinstance(entry, list) and entry:
                pps = _preprocess([entry[0]])
                mods = {m.lower() for m in _atoms(entry[1:])}
                for pp in pps:
                    pp.modules = mods
                    out.append(pp)
        return out
    return []


def _runner(fields: dict[str, list[Sexp]]) -> str:
    for lib in _atoms(fields.get("libraries", [])):
        if lib in RUNNER_LIBRARIES:
            return RUNNER_LIBRARIES[lib]
    return "plain"


def _gen_modules(stanza: list[Sexp]) -> set[str]:
    rest = stanza[1:]
    fields = _fields(stanza)
    if "modules" in fields:
        return set(_atoms(fields["modules"]))
    return {x for x in rest if isinstance(x, str)}


def read_dir(rel: str, text: str, stanzas: Stanzas) -> None:
    info = stanzas.dirs.setdefault(rel, DirInfo())
    for st in parse_sexps(text):
        if not isinstance(st, list) or not st or not isinstance(st[0], str):
            continue
        kind = st[0]
        fields = _fields(st)
        if kind in ("library", "executable", "executables", "test", "tests"):
            mods = _modules_field(fields)
            for pp in _preprocess(fields.get("preprocess", [])):
                info.preprocess.append((mods, pp))
        if kind in ("test", "tests"):
            names = _atoms(fields.get("names", fields.get("name", [])))
            if names:
                stanzas.suites.append(Suite(rel, names, _runner(fields)))
        elif kind == "library" and "inline_tests" in fields:
            names = _atoms(fields.get("name", []))
            stanzas.suites.append(Suite(rel, names or ["inline"], "inline"))
        elif kind == "ocamllex":
            info.ocamllex |= _gen_modules(st)
        elif kind == "ocamlyacc":
            info.ocamlyacc |= _gen_modules(st)
        elif kind == "menhir":
            info.menhir |= _gen_modules(st)


def read_stanzas(tree: Path) -> Stanzas:
    """Walk ``tree`` (no symlinks followed, build and VCS dirs skipped) and read every ``dune``
    file."""
    stanzas = Stanzas()
    root = str(tree)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        if "dune" not in filenames:
            continue
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel.replace(os.sep, "/")
        path = Path(dirpath) / "dune"
        if path.is_symlink():
            continue
        try:
            read_dir(rel, path.read_text(errors="replace"), stanzas)
        except OSError:
            stanzas.unreadable.append(f"{rel}/dune" if rel else "dune")
    stanzas.suites.sort(key=lambda s: (s.dir, s.names))
    return stanzas
