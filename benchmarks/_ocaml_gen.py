"""A scaled OCaml/dune workspace and realistic diffs against it, deterministic from a seed.

The workspace is one dune library (``src/``, library ``gen``) of ``modules`` modules, each an
``.ml`` with its ``.mli``, arranged as a layered DAG: a module in layer *k* uses one to three
modules of lower layers (mostly the layer just below). An alcotest executable (``test/``) checks
every module. It builds green with dune 2.9 / OCaml 4.13 in the dev profile, where warnings
are errors::

    from benchmarks._ocaml_gen import generate, make_diffs
    info = generate(Path("/tmp/ws"), modules=200, seed=0)
    diffs = make_diffs(info, count=12, seed=1)   # [(kind, expected_furthest, diff_text)]

Each module ``Mnnn`` has a record type ``t``, a variant ``shape``, a module-level ``seed``
computed from its dependencies' seeds (so the test expectations are known here, in Python),
and a few functions. Diffs are small edits of the kinds a model writes: a new function (green),
a body rewrite (green), a new value in an interface (green, rebuilds dependents), a type
error, a parse error, and a change that makes a test fail.
"""

from __future__ import annotations

import difflib
import random
from dataclasses import dataclass, field
from pathlib import Path

DIFF_KINDS: tuple[str, ...] = (
    "add_function",
    "rewrite_body",
    "extend_interface",
    "type_error",
    "parse_error",
    "failing_test",
)

EXPECTED_FURTHEST: dict[str, str | None] = {
    "add_function": "test",
    "rewrite_body": "test",
    "extend_interface": "test",
    "type_error": "parse",
    "parse_error": "apply",
    "failing_test": "build",
}
"""The furthest stage each diff kind reaches (``apply → parse → typecheck → build → test``)."""


@dataclass
class Module:
    name: str  # file stem, e.g. "m042"
    layer: int
    deps: list[str]
    const: int
    seed: int = 0

    @property
    def ocaml(self) -> str:
        return self.name.capitalize()


@dataclass
class Workspace:
    root: Path
    modules: list[Module]
    files: dict[str, str] = field(default_factory=dict)  # relative path -> content

    def module(self, name: str) -> Module:
        return next(m for m in self.modules if m.name == name)


def _plan(modules: int, seed: int, layers: int) -> list[Module]:
    rng = random.Random(seed)
    mods: list[Module] = []
    by_layer: dict[int, list[str]] = {}
    for i in range(modules):
        layer = i * layers // modules
        name = f"m{i:03d}"
        deps: list[str] = []
        if layer > 0:
            below = by_layer[layer - 1]
            lower = [n for k in range(layer - 1) for n in by_layer[k]]
            want = rng.randint(1, 3)
            deps.append(rng.choice(below))
            while len(deps) < want:
                pool = lower if (lower and rng.random() < 0.4) else below
                cand = rng.choice(pool)
                if cand not in deps:
                    deps.append(cand)
                elif len(set(below) | set(lower)) <= len(deps):
                    break
        mods.append(Module(name, layer, sorted(deps), const=rng.randint(1, 97)))
        by_layer.setdefault(layer, []).append(name)
    seeds: dict[str, int] = {}
    for m in mods:
        m.seed = (sum(seeds[d] for d in m.deps) + m.const) % 1000
        seeds[m.name] = m.seed
    return mods


_HELPERS: tuple[tuple[str, str], ...] = (
    (
        "val fold_{i} : int list -> int",
        "let fold_{i} xs = List.fold_left (fun acc x -> acc + (x * {k} mod 13)) {c} xs",
    ),
    (
        "val classify_{i} : t -> shape",
        "let classify_{i} t =\n  match t.id mod 3 with\n  | 0 -> Circle t.id\n"
        "  | 1 -> Square (t.id + {k})\n  | _ -> Empty",
    ),
    (
        "val render_{i} : int list -> string",
        'let render_{i} xs = String.concat "," (List.map (fun x -> string_of_int (x + {k})) xs)',
    ),
    (
        "val sum_to_{i} : int -> int",
        "let sum_to_{i} n =\n  let rec go acc i = if i <= 0 then acc else go (acc + (i * {k})) (i - 1) in\n"
        "  go 0 n",
    ),
    (
        "val gap_{i} : int * int -> int option",
        "let gap_{i} (a, b) = if a > b then Some (a - b + {k}) else None",
    ),
    (
        "val distinct_{i} : int list -> int list",
        "let distinct_{i} xs = IS.elements (List.fold_left (fun s x -> IS.add (x mod {k1}) s) IS.empty xs)",
    ),
    (
        "val lookup_{i} : (string * int) list -> string -> int",
        "let lookup_{i} env key =\n  match List.assoc_opt key env with\n  | Some v -> v + {k}\n"
        "  | None -> String.length key * {c}",
    ),
    (
        "val weigh_{i} : t -> float",
        "let weigh_{i} t = (t.weight *. {k}.5) +. float_of_int (String.length t.name)",
    ),
)


def _helpers(m: Module, count: int) -> tuple[str, str]:
    rng = random.Random(f"{m.name}:{m.const}")
    sigs, defs = [], []
    for i in range(count):
        sig, body = _HELPERS[i % len(_HELPERS)]
        k, c = rng.randint(2, 31), rng.randint(0, 99)
        sigs.append(sig.format(i=i))
        defs.append(body.format(i=i, k=k, c=c, k1=k + 1))
    return "\n".join(sigs) + "\n", "\n\n".join(defs) + "\n"


def _mli(m: Module, helpers: int) -> str:
    return f"""(** Module {m.ocaml}: layer {m.layer} of the generated workspace. *)

type t = {{ id : int; name : string; weight : float }}

type shape = Circle of int | Square of int | Empty

val seed : int
(** A constant derived from this module's dependencies. *)

val make : int -> t
val score : t -> int
val area : shape -> int
val describe : t -> string
val combine : t -> t -> t
""" + ("\n" + _helpers(m, helpers)[0] if helpers else "")


def _ml(m: Module, helpers: int) -> str:
    dep_sum = " + ".join(f"{d.capitalize()}.seed" for d in m.deps) or "0"
    weight_dep = (
        f"{m.deps[0].capitalize()}.score ({m.deps[0].capitalize()}.make n)" if m.deps else "n"
    )
    extra = ("\nmodule IS = Set.Make (Int)\n\n" + _helpers(m, helpers)[1]) if helpers else ""
    return (
        f"""type t = {{ id : int; name : string; weight : float }}

type shape = Circle of int | Square of int | Empty

let seed = ({dep_sum} + {m.const}) mod 1000

let make n =
  {{ id = n; name = "{m.name}_" ^ string_of_int n; weight = float_of_int ({weight_dep} mod 11) }}

let score t = (t.id * 3) + (seed mod 7)

let area = function
  | Circle r -> 3 * r * r
  | Square s -> s * s
  | Empty -> 0

let describe t = Printf.sprintf "%s(%d)" t.name (score t)

let combine a b =
  {{ id = a.id + b.id; name = a.name ^ "+" ^ b.name; weight = a.weight +. b.weight }}
"""
        + extra
    )


def _test(mods: list[Module]) -> str:
    cases = []
    for m in mods:
        o = f"Gen.{m.ocaml}"
        cases.append(
            f"""let test_{m.name} () =
  Alcotest.(check int) "seed" {m.seed} {o}.seed;
  Alcotest.(check int) "score" {3 * 5 + m.seed % 7} ({o}.score ({o}.make 5));
  Alcotest.(check int) "area" 16 ({o}.area ({o}.Square 4));
  Alcotest.(check string) "describe" "{m.name}_2({3 * 2 + m.seed % 7})" ({o}.describe ({o}.make 2))
"""
        )
    listing = "\n".join(
        f'          Alcotest.test_case "{m.name}" `Quick test_{m.name};' for m in mods
    )
    return (
        "\n".join(cases)
        + f"""
let () =
  Alcotest.run "gen"
    [
      ( "modules",
        [
{listing}
        ] );
    ]
"""
    )


def generate(
    root: Path, *, modules: int = 200, seed: int = 0, layers: int = 10, helpers: int = 24
) -> Workspace:
    """Write the workspace under ``root`` (created; must be empty or missing).

    ``helpers`` small functions (folds, matches, string building, a ``Set`` functor) are added
    to each module so that a module is a realistic ~100-150 lines rather than a stub."""
    if modules < 2:
        raise ValueError("need at least 2 modules")
    mods = _plan(modules, seed, max(1, min(layers, modules)))
    files: dict[str, str] = {
        "dune-project": "(lang dune 2.9)\n",
        "src/dune": "(library\n (name gen))\n",
        "test/dune": "(test\n (name test_gen)\n (libraries gen alcotest))\n",
        "test/test_gen.ml": _test(mods),
    }
    for m in mods:
        files[f"src/{m.name}.mli"] = _mli(m, helpers)
        files[f"src/{m.name}.ml"] = _ml(m, helpers)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Workspace(root=root, modules=mods, files=files)


def unified_diff(changes: dict[str, tuple[str, str]]) -> str:
    """A git-style multi-file unified diff of ``{path: (old, new)}``."""
    out: list[str] = []
    for rel in sorted(changes):
        old, new = changes[rel]
        out.append(f"diff --git a/{rel} b/{rel}\n")
        out.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"a/{rel}",
                f"b/{rel}",
                n=3,
            )
        )
    return "".join(out)


def _edit(ws: Workspace, rel: str, old: str, new: str) -> tuple[str, str]:
    text = ws.files[rel]
    if old not in text:
        raise ValueError(f"{old!r} not in {rel}")
    return text, text.replace(old, new, 1)


def make_diff(ws: Workspace, kind: str, mod: Module) -> str:
    """One diff of ``kind`` (see :data:`DIFF_KINDS`) against module ``mod``."""
    ml, mli = f"src/{mod.name}.ml", f"src/{mod.name}.mli"
    changes: dict[str, tuple[str, str]] = {}
    if kind == "add_function":
        changes[mli] = _edit(
            ws,
            mli,
            "val combine : t -> t -> t\n",
            "val combine : t -> t -> t\nval total_weight : t list -> float\n",
        )
        changes[ml] = (
            ws.files[ml],
            ws.files[ml]
            + ("\nlet total_weight ts = List.fold_left (fun acc t -> acc +. t.weight) 0.0 ts\n"),
        )
    elif kind == "rewrite_body":
        changes[ml] = _edit(
            ws,
            ml,
            'let describe t = Printf.sprintf "%s(%d)" t.name (score t)',
            'let describe t =\n  let s = score t in\n  t.name ^ "(" ^ string_of_int s ^ ")"',
        )
    elif kind == "extend_interface":
        changes[mli] = _edit(
            ws, mli, "val make : int -> t\n", "val default : t\nval make : int -> t\n"
        )
        changes[ml] = _edit(ws, ml, "let score t =", "let default = make 0\n\nlet score t =")
    elif kind == "type_error":
        changes[ml] = _edit(
            ws,
            ml,
            'let describe t = Printf.sprintf "%s(%d)" t.name (score t)',
            'let describe t = Printf.sprintf "%s(%d)" t.name (string_of_int (score t))',
        )
    elif kind == "parse_error":
        changes[ml] = _edit(ws, ml, "| Empty -> 0\n", "| Empty -> 0 +\n")
    elif kind == "failing_test":
        changes[ml] = _edit(ws, ml, "let score t = (t.id * 3)", "let score t = (t.id * 4)")
    else:
        raise ValueError(f"unknown diff kind {kind!r}; known: {', '.join(DIFF_KINDS)}")
    return unified_diff(changes)


def make_diffs(ws: Workspace, count: int, seed: int = 1) -> list[tuple[str, str | None, str]]:
    """``count`` diffs cycling through :data:`DIFF_KINDS`, each on a random module:
    ``[(kind, expected_furthest, diff_text)]``."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        kind = DIFF_KINDS[i % len(DIFF_KINDS)]
        mod = rng.choice(ws.modules)
        out.append((kind, EXPECTED_FURTHEST[kind], make_diff(ws, kind, mod)))
    return out
