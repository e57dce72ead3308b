"""The parse stage parses what the compiler parses: cppo files through cppo, ``.mll`` through
ocamllex, ppx files (and ``.mly`` without menhir) deferred to typecheck and said so; the dune
stanzas behind it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bactrian.ces.adapters import DuneAdapter
from bactrian.ces.contract import BaseSpec, Job, Verdict
from bactrian.ces.local import LocalBackend
from bactrian.ces.stanzas import Stanzas, read_dir, read_stanzas
from bactrian.dune import parse_sexps

from . import bases
from .conftest import small_config
from .project import udiff

F = bases.OUNIT_FILES


def edit_in(path: str, old: str, new: str) -> str:
    assert old in F[path], (path, old)
    return udiff(path, F[path], F[path].replace(old, new, 1))


@pytest.fixture(scope="module")
def ounit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBackend, BaseSpec]]:
    root = tmp_path_factory.mktemp("parse")
    project = bases.write(root / "p", F)
    be = LocalBackend(small_config(root / "work", workers=1))
    spec = BaseSpec(str(project))
    be.warm(spec, 1)
    yield be, spec
    be.close()


def judge(ounit: tuple[LocalBackend, BaseSpec], *diffs: str) -> list[Verdict]:
    be, spec = ounit
    return be.evaluate([Job(spec, d) for d in diffs])


def statuses(v: Verdict) -> dict[str, str]:
    return {s.name: s.status for s in v.stages}


def test_cppo_files_are_parsed_through_cppo(ounit: tuple[LocalBackend, BaseSpec]) -> None:
    good = edit_in("lib/compat.ml", "let answer = 42", "let answer = 40 + 2")
    # the #else branch is what cppo keeps: a syntax error there is a parse failure
    bad = edit_in("lib/compat.ml", "let answer = 42", "let answer = (42")
    v_good, v_bad = judge(ounit, good, bad)
    assert v_good.ok, v_good.to_dict()
    assert statuses(v_bad) == {"apply": "passed", "parse": "failed"}, v_bad.to_dict()
    assert "cppo lib/compat.ml" in "".join(s.output for s in v_bad.stages) or any(
        d.kind == "syntax" for d in v_bad.diagnostics
    )


def test_ocamllex_files_are_parsed_through_ocamllex(ounit: tuple[LocalBackend, BaseSpec]) -> None:
    good = edit_in("lib/lexer.mll", "| _ { words lexbuf }", "| ' ' | _ { words lexbuf }")
    bad_rule = edit_in("lib/lexer.mll", "| eof { None }", "| eof { None ")
    bad_action = edit_in("lib/lexer.mll", "{ Some w }", "{ Some (w }")
    v_good, v_rule, v_action = judge(ounit, good, bad_rule, bad_action)
    assert v_good.ok, v_good.to_dict()
    for v in (v_rule, v_action):
        assert statuses(v) == {"apply": "passed", "parse": "failed"}, v.to_dict()


def test_ppx_and_missing_menhir_are_deferred_and_said_so(tmp_path: Path) -> None:
    st = Stanzas()
    read_dir(
        "src",
        "(library (name p) (modules a b) (preprocess (pps ppx_deriving.show)))\n"
        "(menhir (modules parser))\n",
        st,
    )
    a = DuneAdapter()
    a.stanzas = st
    cmd, notes = a.parse_plan(["src/a.ml", "src/parser.mly", "other/c.ml"])
    assert cmd is not None and "other/c.ml" in cmd and "src/a.ml" not in cmd
    assert any("src/a.ml is preprocessed by a ppx: parsed at typecheck" in n for n in notes)
    if shutil.which("menhir") is None:
        assert any("menhir is not installed here: src/parser.mly" in n for n in notes)
    else:
        assert "menhir --only-preprocess src/parser.mly" in cmd


def test_stanzas_of_the_base() -> None:
    st = Stanzas()
    read_dir(
        "t",
        "; a comment\n#| block |#\n#;(test (name hidden))\n"
        "(tests (names a b) (libraries x alcotest))\n(test (name c) (libraries ounit2))\n"
        "(library (name l) (inline_tests) (preprocess (pps ppx_inline_test)))\n"
        '(rule (with-stdout-to x.txt (echo "a ) b")))\n',
        st,
    )
    assert [(s.names, s.runner) for s in st.suites] == [
        (["a", "b"], "alcotest"),
        (["c"], "ounit2"),
        (["l"], "inline"),
    ]
    assert parse_sexps('(a "b \\" c" (d))') == [["a", 'b " c', ["d"]]]


def test_read_stanzas_walks_the_tree_once(tmp_path: Path) -> None:
    root = bases.write(tmp_path / "p", {**F, "_build/default/x/dune": "(test (name ghost))\n"})
    st = read_stanzas(root)
    assert [(s.dir, s.runner) for s in st.suites] == [("test", "ounit2"), ("tests", "ounit1")]
    assert st.preprocess_of("lib/compat.ml") is not None
    assert st.preprocess_of("lib/geom.ml") is None
    assert st.generator_of("lib/lexer.mll") == "ocamllex"


def test_a_file_only_dune_can_preprocess_is_deferred_to_typecheck(tmp_path: Path) -> None:
    files = {
        "dune-project": "(lang dune 2.9)\n",
        "lib/dune": '(library (name pp) (preprocess (action (system "cat %{input-file}"))))\n',
        "lib/pp.ml": "let x = 1\n",
    }
    project = bases.write(tmp_path / "p", files)
    good = udiff("lib/pp.ml", files["lib/pp.ml"], "let x = 2\n")
    bad = udiff("lib/pp.ml", files["lib/pp.ml"], "let x = (2\n")
    be = LocalBackend(small_config(tmp_path / "work", workers=1))
    try:
        v_good, v_bad = be.evaluate([Job(BaseSpec(str(project)), d) for d in (good, bad)])
    finally:
        be.close()
    assert statuses(v_good)["parse"] == "passed" and "parse-deferred" in v_good.flags
    assert "lib/pp.ml is preprocessed by a preprocessor the CES cannot run alone" in (
        v_good.stage("parse").output  # type: ignore[union-attr]
    )
    assert v_good.test_report is not None and v_good.test_report["guard"] == "none"
    assert v_good.ok and v_good.reward == 1.0  # no test suites: nothing to forge
    # the syntax error is found by typecheck and still counted as a parse failure
    assert statuses(v_bad) == {"apply": "passed", "parse": "failed"}, v_bad.to_dict()
