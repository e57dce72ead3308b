"""Small real dune projects beyond the alcotest one in ``project.py``: OUnit 1 and 2 suites with
cppo and ocamllex sources, a plain ``(test)`` executable, and the alcotest project with an
``examples/`` directory (for a user's own test command)."""

from __future__ import annotations

from pathlib import Path

from .project import FILES as ALCOTEST_FILES

GEOM = "let square x = x * x\nlet double x = 2 * x\n"

OUNIT_FILES: dict[str, str] = {
    "dune-project": "(lang dune 2.9)\n",
    "lib/dune": (
        "(library (name shapes)\n"
        " (preprocess (per_module ((action (run %{bin:cppo} %{input-file})) compat))))\n"
        "(ocamllex lexer)\n"
    ),
    "lib/geom.ml": GEOM,
    "lib/compat.ml": (
        "#ifdef BACTRIAN_NEVER_DEFINED\nlet answer = (\n#else\nlet answer = 42\n#endif\n"
    ),
    "lib/lexer.mll": (
        "rule words = parse\n"
        "  | ['a'-'z']+ as w { Some w }\n"
        "  | _ { words lexbuf }\n"
        "  | eof { None }\n"
    ),
    "test/dune": "(test (name test_u2) (libraries shapes ounit2))\n",
    "test/test_u2.ml": (
        "open OUnit2\n"
        'let () = run_test_tt_main ("u2" >::: [\n'
        '  "square" >:: (fun _ -> assert_equal 9 (Shapes.Geom.square 3));\n'
        '  "double" >:: (fun _ -> assert_equal 6 (Shapes.Geom.double 3));\n'
        '  "answer" >:: (fun _ -> assert_equal 42 Shapes.Compat.answer) ])\n'
    ),
    "tests/dune": "(test (name test_u1) (libraries shapes oUnit))\n",
    "tests/test_u1.ml": (
        "open OUnit\n"
        'let _ = run_test_tt_main ("u1" >::: [\n'
        '  "square" >:: (fun () -> assert_equal 4 (Shapes.Geom.square 2));\n'
        '  "word" >:: (fun () -> assert_equal (Some "ab")\n'
        '     (Shapes.Lexer.words (Lexing.from_string "ab"))) ])\n'
    ),
}

PLAIN_FILES: dict[str, str] = {
    "dune-project": "(lang dune 2.9)\n",
    "lib/dune": "(library (name shapes))\n",
    "lib/geom.ml": GEOM,
    "test/dune": "(test (name t) (libraries shapes))\n",
    "test/t.ml": "let () = assert (Shapes.Geom.square 3 = 9)\nlet () = assert (Shapes.Geom.double 3 = 6)\n",
}

EXAMPLES_FILES: dict[str, str] = {
    **ALCOTEST_FILES,
    "examples/dune": "(executable (name demo) (libraries shapes))\n",
    "examples/demo.ml": "let () = print_int (Shapes.perimeter (Shapes.Square 2))\n",
}


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root
