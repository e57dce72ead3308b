"""Which files are relevant to an example — chosen among the files that exist in the base
tree only (no future leaks).

In a dune project the build's own structure decides (:mod:`bactrian.dune`): a touched file's
module is looked up in its stanza (library, executable, test; its ``modules`` field;
``.mll``/``.mly``/cppo sources of generated ``.ml`` files), and its siblings come from that
stanza only — its ``.ml``/``.mli``/``.mll``, the stanza's other modules that the change
names, and the tests (stanzas that depend on the library) that use the module — never a
same-named file of another library. A new file's context includes the files that lost the
code it gained (moves, extractions). Without a ``dune-project`` the module stem decides
(``foo.ml``, ``foo.mli``, ``test_foo.ml``), siblings from the same directory or a test
directory.

Diagnostics that point into generated files (``_build/default/lib/read.ml``, ocamllex output)
are mapped back to their source through the generated file's line directives.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bactrian.dune import (
    Component,
    DuneIndex,
    capitalized,
    lists_dune_project,
    map_line,
    regenerate,
    strip_build_dir,
)

FileMap = dict[str, bytes]
Reader = Callable[[list[str]], FileMap]
SOURCES = (".ml", ".mli", ".mll", ".mly")
_UPPER = re.compile(r"\b[A-Z][A-Za-z0-9_']*")
MIN_MOVED_LINES = 2  # a new file shares this many non-trivial lines with a file that lost them


@functools.lru_cache(maxsize=1 << 16)
def module_stem(path: str) -> str:
    """``src/ledger.mli`` → ``ledger``; ``test/test_ledger.ml`` → ``ledger``."""
    name = posixpath.basename(path)
    stem = name.split(".", 1)[0].lower()
    for prefix in ("test_", "tests_"):
        if stem.startswith(prefix):
            stem = stem[len(prefix) :]
    for suffix in ("_test", "_tests"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def is_test_path(path: str) -> bool:
    parts = path.lower().split("/")
    base = parts[-1].split(".", 1)[0]
    return (
        any(p in ("test", "tests") for p in parts[:-1])
        or base.startswith("test_")
        or base.endswith("_test")
    )


def relevant_files(seeds: Iterable[str], existing: Iterable[str], limit: int = 0) -> list[str]:
    """Without dune stanzas: ``seeds`` (diagnostic files, touched files) and their siblings
    by module stem — in the seed's directory, or test files — restricted to ``existing`` (the
    base tree's file list), sorted. With ``limit`` > 0 at most that many: seeds first, in the
    order given, then siblings."""
    existing_set = set(existing)
    seeds = [s for s in seeds if s]
    wanted = {(module_stem(s), posixpath.dirname(s)) for s in seeds if s.endswith(SOURCES)}
    stems = {w[0] for w in wanted}
    dirs = {w for w in wanted}
    first = list(dict.fromkeys(s for s in seeds if s in existing_set))
    siblings = sorted(
        p
        for p in existing_set
        if p.endswith(SOURCES)
        and p not in first
        and module_stem(p) in stems
        and ((module_stem(p), posixpath.dirname(p)) in dirs or is_test_path(p))
    )
    chosen = first + siblings
    if limit > 0:
        chosen = chosen[:limit]
    return sorted(chosen)


def decode_files(files: dict[str, bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, data in sorted(files.items()):
        try:
            out[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return out


def words_of_diff(diff: str) -> set[str]:
    """Capitalised identifiers (module names) on the diff's changed and context lines."""
    out: set[str] = set()
    for line in diff.splitlines():
        if line.startswith(("diff --git", "--- ", "+++ ", "@@", "index ")):
            continue
        out.update(_UPPER.findall(line))
    return out


def _meaningful(line: str) -> str | None:
    s = " ".join(line.split())
    if len(s) < 8 or s in ("end", "in", "begin", ";;") or s.startswith(("(*", "*)", "open ")):
        return None
    return s


def moved_from(old: FileMap, new: FileMap) -> dict[str, list[str]]:
    """For each file of ``new`` absent from ``old``: the files that lost lines it gained
    (moves and extractions), most shared lines first."""
    out: dict[str, list[str]] = {}
    created = [p for p in new if p not in old]
    if not created:
        return out
    lost: dict[str, set[str]] = {}
    for p, before in old.items():
        after = new.get(p)
        a_lines = _lines(before)
        b_lines = set(_lines(after)) if after is not None else set()
        gone = {m for m in (_meaningful(x) for x in a_lines if x not in b_lines) if m}
        if gone:
            lost[p] = gone
    for p in created:
        gained = {m for m in (_meaningful(x) for x in _lines(new[p])) if m}
        scores = sorted(
            ((len(gained & g), q) for q, g in lost.items() if len(gained & g) >= MIN_MOVED_LINES),
            reverse=True,
        )
        if scores:
            out[p] = [q for _, q in scores]
    return out


def _lines(data: bytes | None) -> list[str]:
    if data is None:
        return []
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return []


@dataclass
class Choice:
    """The context files of one example, and why the context is empty when it is."""

    files: list[str]
    empty_reason: str | None = None
    mapped: dict[str, str] = field(default_factory=dict)  # generated file → its source


class TreeContext:
    """Context resolution for one base tree (its file list and a reader of its files)."""

    def __init__(self, paths: Sequence[str], read: Reader) -> None:
        self.paths = list(paths)
        self.existing = set(self.paths)
        self._read = read
        self._cache: FileMap = {}
        self.index: DuneIndex | None = None
        if lists_dune_project(self.existing):
            self.index = DuneIndex.from_reader(self.paths, self.read)

    def read(self, paths: list[str]) -> FileMap:
        want = [p for p in paths if p not in self._cache and p in self.existing]
        if want:
            self._cache.update(self._read(want))
        return {p: self._cache[p] for p in paths if p in self._cache}

    def source_path(self, path: str) -> str:
        """A path as the source tree has it: ``_build/<ctx>/`` dropped, a generated file
        (absent from the tree) replaced by its source."""
        p = strip_build_dir(path)
        if p in self.existing or self.index is None:
            return p
        src = self.index.source_of(p)
        return src if src and src in self.existing else p

    # ------------------------------------------------------------ diagnostics
    def map_diagnostic(self, diag: dict[str, Any]) -> dict[str, Any]:
        """A diagnostic (as a dict) that points into a generated file, pointed at its source
        (line through the generated text's line directives, regenerated from the base's
        source); others unchanged but for a ``_build/<ctx>/`` prefix dropped."""
        file = str(diag.get("file", ""))
        p = strip_build_dir(file)
        if p in self.existing or self.index is None:
            return {**diag, "file": p} if p != file else diag
        src = self.index.source_of(p)
        if not src or src not in self.existing:
            return {**diag, "file": p} if p != file else diag
        out = {**diag, "file": src, "generated_file": p}
        text = regenerate(src, self.read([src]).get(src, b""), p)
        if text is not None:
            start = map_line(text, int(diag.get("line", 0)), p)
            end = map_line(text, int(diag.get("end_line", diag.get("line", 0))), p)
            if start is not None:
                out["line"] = start[1]
                out["end_line"] = end[1] if end is not None and end[0] == start[0] else start[1]
            else:
                out["line_in_generated_code"] = True
        return out

    # ------------------------------------------------------------ context
    def choose(
        self,
        seeds: Sequence[str],
        *,
        diff: str = "",
        moved: Iterable[str] = (),
        limit: int = 0,
        new_files: Iterable[str] = (),
    ) -> Choice:
        """The context of a change touching ``seeds`` (diagnostic files first, then touched
        files): seeds present in the base, then the files code moved from, then same-module
        siblings, the stanza's modules the change names, and the tests that use the module."""
        mapped = {s: self.source_path(s) for s in seeds if self.source_path(s) != s}
        seeds = [mapped.get(s, s) for s in seeds if s]
        first = list(dict.fromkeys(s for s in seeds if s in self.existing))
        moved_l = [m for m in dict.fromkeys(moved) if m in self.existing and m not in first]
        if self.index is None:
            rest = [p for p in relevant_files(seeds, self.existing) if p not in first + moved_l]
            tiers = [rest]
        else:
            tiers = self._dune_tiers(seeds, words_of_diff(diff))
        chosen = first + moved_l
        for tier in tiers:
            chosen += [p for p in tier if p not in chosen]
        if limit > 0:
            chosen = chosen[:limit]
        files = sorted(chosen)
        reason = None
        if not files:
            reason = self._empty_reason(seeds, set(new_files))
        return Choice(files, reason, mapped)

    def _dune_tiers(self, seeds: Sequence[str], words: set[str]) -> list[list[str]]:
        assert self.index is not None
        index = self.index
        siblings: list[str] = []
        named: list[str] = []
        tests: list[str] = []
        for s in seeds:
            comp = index.component_of(s)
            mod = index.module_name(s) or index.module_name(
                next((g for g, src in index.generated.items() if src == s), "")
            )
            if comp is None or mod is None:
                # a file of a stanza the base does not have yet (a new directory): the
                # libraries the change names (``Lib.Mod``, or ``Lib``'s main module)
                named += self._libraries_named(words)
                continue
            siblings += index.module_files(comp, mod)
            for other in sorted(comp.modules - {mod}):
                if capitalized(other) in words:
                    named += _interface_first(index.module_files(comp, other))
            tests += self._users(comp, mod)
        return [siblings, named, tests]

    def _libraries_named(self, words: set[str]) -> list[str]:
        """Interfaces of the libraries ``words`` name: their main module (a library ``foo``
        with a ``foo.ml``) and the modules named next to them."""
        assert self.index is not None
        out: list[str] = []
        for lib in self.index.components:
            if lib.kind != "library":
                continue
            caps = {capitalized(n.replace("-", "_").split(".")[-1]) for n in lib.library_names()}
            if not caps & words:
                continue
            main = {n.lower() for n in caps} & lib.modules
            for m in sorted(main):
                out += _interface_first(self.index.module_files(lib, m))
            for m in sorted(lib.modules - main):
                if capitalized(m) in words:
                    out += _interface_first(self.index.module_files(lib, m))
        return out

    def _users(self, comp: Component, mod: str) -> list[str]:
        """Files of the stanzas that depend on ``comp``'s library (tests first) and use
        ``mod``: ``Lib.Mod``, or ``Mod`` where ``Lib`` is opened or named."""
        assert self.index is not None
        libs = sorted(capitalized(n.replace("-", "_").split(".")[-1]) for n in comp.library_names())
        name = capitalized(mod)
        qualified = (
            re.compile(r"\b(?:" + "|".join(map(re.escape, libs)) + r")\." + re.escape(name) + r"\b")
            if libs
            else None
        )
        bare = re.compile(r"\b" + re.escape(name) + r"\b")
        out: list[str] = []
        for dep in self.index.dependents(comp):
            files = [f for f in self.index.files_of(dep) if f.endswith((".ml", ".mll"))]
            texts = self.read(files)
            for f in files:
                text = texts.get(f, b"").decode("utf-8", "replace")
                if (qualified is not None and qualified.search(text)) or (
                    bare.search(text) and any(lib in text for lib in libs)
                ):
                    out.append(f)
        return out

    def _empty_reason(self, seeds: Sequence[str], new_files: set[str]) -> str:
        if not seeds:
            return "no files touched and no diagnostics"
        if all(s in new_files or s not in self.existing for s in seeds):
            if self.index is not None and not any(self.index.component_of(s) for s in seeds):
                return "new files outside any dune stanza, and no file lost their code"
            return "new files only, and no file in the base lost their code or is named by them"
        return "the touched files have no related files in the base tree"


def _interface_first(files: list[str]) -> list[str]:
    mli = [f for f in files if f.endswith(".mli")]
    return mli or files[:1]


def tree_context(paths: Sequence[str], read: Reader) -> TreeContext:
    return TreeContext(paths, read)
