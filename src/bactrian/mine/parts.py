"""Split a large change into smaller coherent parts, each within the size limits.

Units are the change blocks of each file (nearby blocks merged). Units are grouped so that

- a module travels with its interface and tests (``foo.ml``, ``foo.mli``, ``test_foo.ml``) when
  the module's whole change fits the limits;
- otherwise, blocks that depend on each other stay together: a block that defines a name
  (``let``/``val``/``type``/``module``/``exception``) and the blocks that use it;

and ordered by real dependencies: build files (``dune``, ``*.opam``) first, a module before
the modules that use it (by module name, aliases included: ``module View = View`` uses
``View``; or by a value another module's change defines), within a module interfaces with
their implementations, tests after what they test. Groups are then packed greedily, in order,
into parts within the limits; a part still over them cuts the chain there
(:func:`cut_chain`). Each part's diff is rendered between the tree with the earlier parts
applied and the tree with this one applied too, so the parts apply in order and together
reconstruct the whole change exactly. With build labels on, :mod:`bactrian.mine.vcs` builds
every part and merges or drops those that do not build.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from bactrian.mine.context import is_test_path, module_stem
from bactrian.mine.textdiff import FileMap, is_binary, render

MERGE_GAP = 3  # change blocks closer than this (in lines) are one unit
DEFINITION = re.compile(
    r"^\s*(?:let(?:\s+rec)?|and|val|external|type(?:\s+nonrec)?|module(?:\s+type)?|exception)"
    r"\s+(?:\([^)]*\)\s*|'\w+\s+|\([^)]*\)\s+)?([A-Za-z_][\w']*)"
)
# record fields (``; mutable h_len : int``) and variant constructors (``| Eof of int``) are
# definitions too: a block that removes a field goes with the blocks that stop using it
FIELD_OR_CONSTRUCTOR = re.compile(
    r"^\s*(?:[;{]\s*)?(?:mutable\s+)?([a-z_][\w']*)\s*:(?!=)|^\s*\|\s*([A-Z][\w']*)\b(?!\s*->)"
)
_WORD = re.compile(r"[A-Za-z_][\w']*")


@dataclass
class Unit:
    path: str
    a_start: int  # line range in the old file [a_start, a_end)
    a_end: int
    b_lines: list[str]  # replacement lines
    removed: int
    added: int
    whole_file: bool = False  # creation, deletion, binary: all or nothing
    defines: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)
    modules_used: set[str] = field(default_factory=set)  # capitalised names, aliases included

    @property
    def size(self) -> int:
        return self.removed + self.added


@dataclass
class Part:
    units: list[Unit]

    @property
    def paths(self) -> list[str]:
        return sorted({u.path for u in self.units})

    @property
    def size(self) -> int:
        return sum(u.size for u in self.units)


def _text_lines(data: bytes | None) -> list[str]:
    return [] if data is None else data.decode().splitlines(keepends=True)


def file_units(path: str, old: bytes | None, new: bytes | None) -> list[Unit]:
    if old is None or new is None or is_binary(old) or is_binary(new):
        a, b = _text_lines_safe(old), _text_lines_safe(new)
        u = Unit(path, 0, len(a), b, len(a), len(b), whole_file=True)
        _annotate(u, a)
        return [u]
    a, b = _text_lines(old), _text_lines(new)
    ops = [op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()]
    blocks: list[list[int]] = []  # [i1, i2, j1, j2]
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            continue
        if blocks and i1 - blocks[-1][1] < MERGE_GAP:
            blocks[-1][1], blocks[-1][3] = i2, j2
        else:
            blocks.append([i1, i2, j1, j2])
    units = []
    for i1, i2, j1, j2 in blocks:
        old_part, new_part = a[i1:i2], b[j1:j2]
        # the merged block's exact removed/added counts
        sm = difflib.SequenceMatcher(None, old_part, new_part, autojunk=False)
        removed = added = 0
        for tag, x1, x2, y1, y2 in sm.get_opcodes():
            if tag != "equal":
                removed += x2 - x1
                added += y2 - y1
        u = Unit(path, i1, i2, new_part, removed, added)
        _annotate(u, old_part)
        units.append(u)
    return units


def _text_lines_safe(data: bytes | None) -> list[str]:
    if data is None or is_binary(data):
        return []
    return _text_lines(data)


def _definitions(line: str) -> list[str]:
    m = DEFINITION.match(line)
    if m:
        return [m.group(1)]
    f = FIELD_OR_CONSTRUCTOR.match(line)
    return [g for g in f.groups() if g] if f else []


def _annotate(u: Unit, old_part: list[str]) -> None:
    for line in u.b_lines:
        u.defines.update(_definitions(line))
    for line in u.b_lines:
        u.uses.update(_WORD.findall(line))
        # ``module View = View`` defines View *and* uses the module View: module names are
        # kept apart for ordering modules
        u.modules_used.update(w for w in _WORD.findall(line) if w[:1].isupper())
    # removing a definition also affects its users, and a block that stops using a name
    # goes with the block that changes what the name is
    for line in old_part:
        u.defines.update(_definitions(line))
        u.uses.update(_WORD.findall(line))
    u.uses -= u.defines


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def _dependency_groups(units: list[Unit]) -> list[list[Unit]]:
    uf = _UnionFind(len(units))
    by_name: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        for name in u.defines:
            by_name.setdefault(name, []).append(i)
        if u.whole_file:
            for j, v in enumerate(units):
                if v.path == u.path:
                    uf.union(i, j)
    for idxs in by_name.values():  # a definition in .ml and its val in .mli
        for j in idxs[1:]:
            uf.union(idxs[0], j)
    for i, u in enumerate(units):
        for name in u.uses:
            for j in by_name.get(name, ()):
                uf.union(i, j)
    groups: dict[int, list[Unit]] = {}
    for i, u in enumerate(units):
        groups.setdefault(uf.find(i), []).append(u)
    return list(groups.values())


BUILD_FILES = ("dune", "dune-project", "dune-workspace")


def is_build_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name in BUILD_FILES or name.endswith(".opam")


def _order_modules(stems: list[str], units_by_stem: dict[str, list[Unit]]) -> list[str]:
    """Build files first, then modules used by others before their users (``Foo.x`` or
    ``module Foo = Foo`` in module B's new lines → foo before b), tests after the modules
    they test."""
    deps: dict[str, set[str]] = {s: set() for s in stems}
    defined = {s: {n for u in units_by_stem[s] for n in u.defines} for s in stems}
    for s in stems:
        words = {w.lower() for u in units_by_stem[s] for w in u.modules_used}
        uses = {w for u in units_by_stem[s] for w in u.uses}
        deps[s] = {t for t in stems if t != s and (t in words or uses & defined[t])}
    build = [s for s in stems if all(is_build_file(u.path) for u in units_by_stem[s])]
    tests = [
        s for s in stems if s not in build and all(is_test_path(u.path) for u in units_by_stem[s])
    ]
    for s in stems:  # every module depends on the build files; tests on every module
        if s not in build:
            deps[s] |= set(build)
        if s in tests:
            deps[s] |= {t for t in stems if t not in tests}
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(s: str) -> None:
        if s in ordered or s in visiting:
            return
        visiting.add(s)
        for t in sorted(deps[s]):
            visit(t)
        visiting.discard(s)
        ordered.append(s)

    for s in stems:
        visit(s)
    return ordered


def plan_parts(old: FileMap, new: FileMap, max_lines: int, max_files: int) -> list[Part]:
    """The parts a change from ``old`` to ``new`` splits into (one part when it fits)."""
    paths = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
    units = [u for p in paths for u in file_units(p, old.get(p), new.get(p))]
    total_files = len(paths)
    if sum(u.size for u in units) <= max_lines and total_files <= max_files:
        return [Part(units)] if units else []
    by_stem: dict[str, list[Unit]] = {}
    for u in units:
        by_stem.setdefault(module_stem(u.path), []).append(u)
    groups: list[list[Unit]] = []
    for stem in _order_modules(list(by_stem), by_stem):
        mod = by_stem[stem]
        if sum(u.size for u in mod) <= max_lines and len({u.path for u in mod}) <= max_files:
            groups.append(mod)
        else:
            dep = _dependency_groups(mod)
            dep.sort(key=_group_key)
            groups.extend(dep)
    parts: list[Part] = []
    for g in groups:
        if parts:
            cur = parts[-1]
            files = {u.path for u in cur.units} | {u.path for u in g}
            if cur.size + sum(u.size for u in g) <= max_lines and len(files) <= max_files:
                cur.units.extend(g)
                continue
        parts.append(Part(list(g)))
    return parts


def _group_key(g: list[Unit]) -> tuple[bool, bool, bool, str, int]:
    """Within one module: build files, then interfaces with their implementations (a group
    that holds an ``.mli`` change first), tests last."""
    return min(
        (
            not is_build_file(u.path),
            is_test_path(u.path),
            u.path.endswith((".ml", ".mll", ".mly")),
            u.path,
            u.a_start,
        )
        for u in g
    )


def over_limit(part: Part, max_lines: int, max_files: int) -> bool:
    return part.size > max_lines or len(part.paths) > max_files


def cut_chain(parts: list[Part], max_lines: int, max_files: int) -> tuple[list[Part], int]:
    """The parts before the first one over the limits, and how many parts were cut (that
    part and every later one: a later part applies on top of it, so a chain with a part
    missing from its middle would teach a base no one saw). A single part is never cut (the
    size filter counts it)."""
    if len(parts) <= 1:
        return parts, 0
    for k, p in enumerate(parts):
        if over_limit(p, max_lines, max_files):
            return parts[:k], len(parts) - k
    return parts, 0


def merge_parts(parts: list[Part], k: int) -> list[Part]:
    """``parts`` with part ``k`` and part ``k + 1`` made one."""
    merged = Part(parts[k].units + parts[k + 1].units)
    return parts[:k] + [merged] + parts[k + 2 :]


def part_states(old: FileMap, new: FileMap, parts: list[Part]) -> list[FileMap]:
    """The tree (changed files only, from ``old``) after each part, in order."""
    applied: list[Unit] = []
    state = dict(old)
    out: list[FileMap] = []
    for part in parts:
        applied.extend(part.units)
        for path in part.paths:
            units = [u for u in applied if u.path == path]
            if any(u.whole_file for u in units):
                value = new.get(path)
            else:
                value = _apply_units(old.get(path), units)
            if value is None:
                state.pop(path, None)
            else:
                state[path] = value
        out.append(dict(state))
    return out


def render_parts(old: FileMap, parts: list[Part], states: list[FileMap]) -> list[tuple[str, str]]:
    """``[(pre_diff, part_diff), …]`` from the parts and their states."""
    out: list[tuple[str, str]] = []
    before = dict(old)
    for part, state in zip(parts, states, strict=True):
        out.append((render(old, before), render(before, state, part.paths)))
        before = state
    return out


def _apply_units(old: bytes | None, units: list[Unit]) -> bytes | None:
    if any(u.whole_file for u in units):
        u = units[0]
        return None if not u.b_lines and u.removed and not u.added else _join(u.b_lines)
    a = _text_lines(old)
    out: list[str] = []
    pos = 0
    for u in sorted(units, key=lambda u: u.a_start):
        out.extend(a[pos : u.a_start])
        out.extend(u.b_lines)
        pos = u.a_end
    out.extend(a[pos:])
    return _join(out)


def _join(lines: list[str]) -> bytes:
    return "".join(lines).encode()


def split_change(
    old: FileMap, new: FileMap, max_lines: int, max_files: int
) -> list[tuple[str, str]]:
    """``[(pre_diff, part_diff), …]``: each part's diff and the diff of all earlier parts
    (from ``old``), so part k applies to ``old`` + ``pre_diff``. Binary files keep their
    original bytes through the intermediate trees."""
    parts = plan_parts(old, new, max_lines, max_files)
    return render_parts(old, parts, part_states(old, new, parts))
