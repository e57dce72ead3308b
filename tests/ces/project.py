"""A tiny real OCaml/dune project for CES tests, and diffs against it.

Layout: ``lib/`` (``shapes.ml`` + ``geom.ml``), ``bin/main.ml`` (an executable using the
library), ``test/test_shapes.ml`` (alcotest, three cases).
"""

from __future__ import annotations

import difflib
from pathlib import Path

FILES: dict[str, str] = {
    "dune-project": "(lang dune 2.9)\n",
    "lib/dune": "(library (name shapes))\n",
    "lib/geom.ml": "let square x = x * x\nlet double x = 2 * x\n",
    "lib/shapes.ml": (
        "type t = Square of int | Rect of int * int\n"
        "\n"
        "let area = function\n"
        "  | Square s -> Geom.square s\n"
        "  | Rect (w, h) -> w * h\n"
        "\n"
        "let perimeter = function\n"
        "  | Square s -> 4 * s\n"
        "  | Rect (w, h) -> Geom.double (w + h)\n"
    ),
    "bin/dune": "(executable (name main) (libraries shapes))\n",
    "bin/main.ml": "let () = print_int (Shapes.area (Shapes.Square 3))\n",
    "test/dune": "(test (name test_shapes) (libraries shapes alcotest))\n",
    "test/test_shapes.ml": (
        'let t_area () = Alcotest.(check int) "area" 9 (Shapes.area (Shapes.Square 3))\n'
        'let t_rect () = Alcotest.(check int) "rect" 6 (Shapes.area (Shapes.Rect (2, 3)))\n'
        'let t_per () = Alcotest.(check int) "per" 10 (Shapes.perimeter (Shapes.Rect (2, 3)))\n'
        "let () =\n"
        '  Alcotest.run "shapes"\n'
        '    [ ("shapes", [ Alcotest.test_case "area" `Quick t_area;\n'
        '                   Alcotest.test_case "rect" `Quick t_rect;\n'
        '                   Alcotest.test_case "per" `Quick t_per ]) ]\n'
    ),
}


def write_project(root: Path) -> Path:
    for rel, text in FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def udiff(path: str, old: str | None, new: str | None) -> str:
    """A git-style unified diff of one file (``None`` = absent)."""
    a = (old or "").splitlines(keepends=True)
    b = (new or "").splitlines(keepends=True)
    head = f"diff --git a/{path} b/{path}\n"
    if old is None:
        head += "new file mode 100644\n"
    elif new is None:
        head += "deleted file mode 100644\n"
    body = "".join(
        difflib.unified_diff(
            a,
            b,
            "/dev/null" if old is None else f"a/{path}",
            "/dev/null" if new is None else f"b/{path}",
        )
    )
    return head + body


def edit(path: str, old: str, new: str) -> str:
    """A diff replacing ``old`` by ``new`` in the project's file ``path``."""
    text = FILES[path]
    assert old in text, (path, old)
    return udiff(path, text, text.replace(old, new, 1))


def append(path: str, extra: str) -> str:
    text = FILES[path]
    return udiff(path, text, text + extra)


def new_file(path: str, text: str) -> str:
    return udiff(path, None, text)
