"""The OCaml diagnostics parser on real dune 2.9 / OCaml output, one project per error class."""

from __future__ import annotations

from pathlib import Path

import pytest

from bactrian.buildstatus.diagnostics import classify, parse_diagnostics, parse_ocaml
from bactrian.types import Diagnostic, Severity

from .projects import run_dune, write_project

ERRORS = {
    "lib/a.ml": "let x = undefined_thing 3\n",
    "lib/b.ml": "let x = (1 +\nlet y = 2\n",
    "lib/b2.ml": "let x = (1 + 2\nlet y = 3\n",
    "lib/l1.ml": 'let x = "abc\n',
    "lib/l2.ml": "let x = 1 (* abc\n",
    "lib/l3.ml": "let x = 1 \001\n",
    "lib/l4.ml": "let g = 08x\n",
    "lib/c.ml": "let unused_fn x =\n  let y = 3 in\n  x\n",
    "lib/c.mli": "",
    "lib/d.ml": "module M = Missing_module.Bar\n",
    "lib/e.ml": "type t = { a : int; b : string }\nlet v : t = { a = 1;\n  b = 2 }\n",
    "lib/f.ml": 'let x = String.lowercase "A"\n',
    "lib/g.ml": "let f (x : < m : int >) = x\nlet y : < m : string > = f (object method m = 3 end)\n",
    "lib/h.ml": 'let g : int list = (fun x ->\n  x + 1,\n  "a")\n',
    "lib/i.ml": 'let v = "not an int"\n',
    "lib/i.mli": "val v : int\n",
    "lib/k.ml": "let k (x : int list) : string list = x\n",
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    root = write_project(tmp_path_factory.mktemp("broken"), ERRORS)
    return run_dune(root)


@pytest.fixture(scope="module")
def by_file(broken: tuple[int, str]) -> dict[str, list[Diagnostic]]:
    out: dict[str, list[Diagnostic]] = {}
    for d in parse_ocaml(broken[1]):
        out.setdefault(d.file, []).append(d)
    return out


def test_every_broken_module_is_reported(broken: tuple[int, str], by_file) -> None:
    code, text = broken
    assert code == 1, text
    expected = {f for f in ERRORS if f.endswith(".ml")}
    assert expected <= set(by_file), text
    # the source excerpts dune prints are not diagnostics or messages
    for diags in by_file.values():
        for d in diags:
            assert " | " not in d.message and "^^^" not in d.message, d


def test_unbound_value_and_module(by_file) -> None:
    (a,) = by_file["lib/a.ml"]
    assert (a.line, a.col, a.end_line, a.end_col) == (1, 8, 1, 23)
    assert a.severity is Severity.ERROR and a.kind == "unbound"
    assert a.message == "Unbound value undefined_thing"
    (d,) = by_file["lib/d.ml"]
    assert d.kind == "unbound" and d.message == "Unbound module Missing_module"


def test_syntax_error(by_file) -> None:
    (b,) = by_file["lib/b.ml"]
    assert b.kind == "syntax" and b.line == 3 and b.severity is Severity.ERROR
    assert classify([b]) == "syntax"


def test_unmatched_paren_note_stays_with_its_syntax_error(by_file) -> None:
    (b2,) = by_file["lib/b2.ml"]
    assert (b2.kind, b2.line, b2.col) == ("syntax", 2, 0)
    assert b2.message.splitlines() == [
        "Syntax error: ')' expected",
        "File \"lib/b2.ml\", line 1, characters 8-9: This '(' might be unmatched",
    ]


@pytest.mark.parametrize(
    "file,first",
    [
        ("lib/l1.ml", "String literal not terminated"),
        ("lib/l2.ml", "Comment not terminated"),
        ("lib/l3.ml", "Illegal character (\\001)"),
        ("lib/l4.ml", "Unknown modifier 'x' for literal 08x"),
    ],
)
def test_lexer_errors_are_syntax_errors(by_file, file: str, first: str) -> None:
    (d,) = by_file[file]
    assert d.kind == "syntax" and d.message == first


def test_warnings_as_errors_in_dev_profile(by_file) -> None:
    c = by_file["lib/c.ml"]
    assert [(x.code, x.severity, x.kind, x.line) for x in c] == [
        ("32", Severity.ERROR, "warning", 1),
        ("26", Severity.ERROR, "warning", 2),
    ]
    assert c[0].message == "unused value unused_fn."
    (f,) = by_file["lib/f.ml"]
    assert (f.severity, f.code, f.kind) == (Severity.ERROR, "deprecated", "warning")
    assert f.message.splitlines() == [
        "Stdlib.String.lowercase",
        "Use String.lowercase_ascii/StringLabels.lowercase_ascii instead.",
    ]


def test_multi_line_type_errors(by_file) -> None:
    (e,) = by_file["lib/e.ml"]
    assert e.kind == "type" and (e.line, e.col, e.end_col) == (3, 6, 7)
    assert e.message == (
        "This expression has type int but an expression was expected of type\nstring"
    )
    (g,) = by_file["lib/g.ml"]
    assert g.message.splitlines() == [
        "This expression has type < m : int >",
        "but an expression was expected of type < m : string >",
        "Types for method m are incompatible",
    ]
    (k,) = by_file["lib/k.ml"]
    assert k.message.splitlines()[-1] == "Type int is not compatible with type string"


def test_multi_line_range(by_file) -> None:
    (h,) = by_file["lib/h.ml"]
    assert (h.line, h.col, h.end_line, h.end_col) == (1, 19, 3, 6)
    assert h.message.startswith("This expression should not be a function")


def test_interface_mismatch_keeps_nested_locations_in_message(by_file) -> None:
    (i,) = by_file["lib/i.ml"]
    assert (i.line, i.col, i.end_col) == (1, 0, 0)  # `File "lib/i.ml", line 1:`
    assert i.kind == "type"
    assert "does not match the interface" in i.message
    assert 'File "lib/i.mli", line 1, characters 0-11: Expected declaration' in i.message
    assert "lib/i.mli" not in by_file  # nested File lines are not new diagnostics


def test_release_profile_warnings_and_alerts(tmp_path: Path) -> None:
    root = write_project(tmp_path, {k: v for k, v in ERRORS.items() if k[4] in "cf"})
    code, text = run_dune(root, profile="release")
    assert code == 0, text
    diags = parse_ocaml(text)
    sev = {(d.file, d.severity, d.code, d.kind) for d in diags}
    assert ("lib/c.ml", Severity.WARNING, "26", "warning") in sev
    assert ("lib/f.ml", Severity.ALERT, "deprecated", "warning") in sev
    assert classify(diags) == "ok"


def test_missing_library_located_in_dune_file(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"lib/dune": "(library (name ledger) (libraries nope_lib))\n"})
    code, text = run_dune(root)
    assert code == 1
    (d,) = parse_ocaml(text)
    assert (d.file, d.line, d.kind) == ("lib/dune", 1, "other")
    assert d.message.startswith('Library "nope_lib" not found.')
    assert "Hint:" in d.message
    assert classify([d]) == "type"


def test_error_without_location(tmp_path: Path) -> None:
    root = write_project(tmp_path, {})
    code, text = run_dune(root, "@no_such_alias")
    assert code == 1
    (d,) = parse_ocaml(text)
    assert (d.file, d.line, d.kind, d.severity) == ("", 0, "other", Severity.ERROR)
    assert "no_such_alias" in d.message and len(d.message.splitlines()) == 2


TEST_ML = """let check_add expected = Alcotest.(check int) "adds" expected (Ledger.add 2 1)
let test_add () = check_add 4; ()
let test_ok () = check_add 3
let test_boom () = failwith "boom"
let () =
  Alcotest.run "ledger"
    [ ("arith", [ Alcotest.test_case "add" `Quick test_add;
                  Alcotest.test_case "ok" `Quick test_ok ]);
      ("misc", [ Alcotest.test_case "boom" `Quick test_boom ]) ]
"""


def test_failing_alcotest_tests(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        {"test/dune": "(test (name test_ledger) (libraries ledger alcotest))\n", "test/t.ml": ""},
    )
    (root / "test/t.ml").unlink()
    (root / "test/test_ledger.ml").write_text(TEST_ML)
    code, text = run_dune(root, "@check", "@runtest")
    assert code == 1, text
    diags = parse_ocaml(text)
    assert [(d.kind, d.file) for d in diags] == [
        ("test", "test/test_ledger.ml"),
        ("test", "test/test_ledger.ml"),
    ], text
    add, boom = diags
    # located at the test's own frame in the backtrace
    assert (add.line, add.col) == (2, 18)
    assert add.message.startswith("Test arith 0 add failed")
    assert "Expected: `4'" in add.message and "Received: `3'" in add.message
    assert "Raised at" not in add.message
    assert boom.message.startswith("Test misc 0 boom failed")
    assert classify(diags) == "test"


def test_green_build_has_no_diagnostics(tmp_path: Path) -> None:
    code, text = run_dune(write_project(tmp_path, {}))
    assert code == 0
    assert parse_diagnostics(text, "ocaml") == []
    assert classify([]) == "ok"


def test_failed_diff_action_under_runtest(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        {
            "t/dune": '(rule (with-stdout-to actual.txt (echo "a\\nb\\nworld\\n")))\n'
            "(rule (alias runtest) (action (diff expected.txt actual.txt)))\n",
            "t/expected.txt": "a\nb\nthere\n",
        },
    )
    code, text = run_dune(root, "@runtest")
    assert code == 1, text
    (d,) = parse_ocaml(text)
    assert (d.file, d.line, d.kind, d.severity) == ("t/expected.txt", 1, "test", Severity.ERROR)
    lines = d.message.splitlines()
    assert "dune promote" in lines[0]
    assert "-there" in lines and "+world" in lines
    assert classify([d]) == "test"


def test_dune_log_gives_the_same_diagnostics_as_the_terminal(tmp_path_factory) -> None:
    from bactrian.buildstatus.diagnostics import parse_dune_log

    root = write_project(tmp_path_factory.mktemp("broken-log"), ERRORS)
    code, text = run_dune(root)
    assert code == 1
    from_log = parse_dune_log((root / "_build" / "log").read_text())
    key = lambda d: (d.file, d.line, d.col)  # noqa: E731
    assert sorted(from_log, key=key) == sorted(parse_ocaml(text), key=key)
    assert parse_diagnostics((root / "_build" / "log").read_text(), "dune-log") == from_log
