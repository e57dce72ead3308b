"""Property tests of the diagnostics parser: rendered records parse back to the same records,
and no input crashes it."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bactrian.buildstatus.diagnostics import (
    PARSERS,
    classify,
    parse_diagnostics,
    parse_gcc_style,
    parse_ocaml,
    render_ocaml,
)
from bactrian.errors import UnknownNameError
from bactrian.types import Diagnostic, Severity

_WORD = st.text(
    alphabet=string.ascii_letters + string.digits + "_'.,()<>->*", min_size=1, max_size=12
)
_LINE = st.lists(_WORD, min_size=1, max_size=6).map(" ".join)
_PATH = st.lists(  # dune never has sources under a directory named _build
    st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8).filter(
        lambda p: p != "_build"
    ),
    min_size=1,
    max_size=3,
).map(lambda parts: "/".join(parts) + ".ml")


@st.composite
def diagnostics(draw: st.DrawFn) -> Diagnostic:
    file = draw(_PATH)
    line = draw(st.integers(1, 5000))
    end_line = draw(st.one_of(st.just(line), st.integers(line + 1, line + 50)))
    col = draw(st.integers(0, 200))
    end_col = draw(st.integers(0, 200)) if end_line != line else draw(st.integers(col, col + 80))
    kind_sev = draw(
        st.sampled_from(
            [
                ("type", Severity.ERROR, None),
                ("unbound", Severity.ERROR, None),
                ("syntax", Severity.ERROR, None),
                ("warning", Severity.ERROR, "w"),
                ("warning", Severity.ERROR, "a"),
                ("warning", Severity.WARNING, "w"),
                ("warning", Severity.ALERT, "a"),
            ]
        )
    )
    kind, sev, code_kind = kind_sev
    code = None
    if code_kind == "w":
        code = str(draw(st.integers(1, 70)))
    elif code_kind == "a":
        code = draw(st.sampled_from(["deprecated", "unstable", "unsafe"]))
    first = draw(_LINE)
    if kind == "syntax":
        first = "Syntax error" + draw(st.sampled_from(["", ": ')' expected"]))
    elif kind == "unbound":
        first = f"Unbound {draw(st.sampled_from(['value', 'module', 'type']))} {first}"
    elif kind == "type" and first.startswith(("Unbound", "Syntax")):
        first = "x" + first
    rest = draw(st.lists(_LINE, max_size=4))
    where = draw(st.sampled_from(["source", "source", "source", "dune", "nowhere"]))
    if where != "source" and sev is Severity.ERROR and code is None:
        if kind == "type":
            kind = "other"  # errors outside .ml/.mli files are not type errors
        if where == "dune":
            file = file.rsplit("/", 1)[0] + "/dune" if "/" in file else "dune"
        else:
            file, line, col, end_line, end_col = "", 0, 0, 0, 0
    return Diagnostic(
        file, line, col, end_line, end_col, sev, "\n".join([first, *rest]), kind, code
    )


@given(st.lists(diagnostics(), max_size=6), st.booleans())
@settings(max_examples=200, deadline=None)
def test_rendered_diagnostics_parse_back(diags: list[Diagnostic], noisy: bool) -> None:
    parts = []
    for d in diags:
        text = render_ocaml(d)
        if (
            noisy and d.file
        ):  # dune's --display short lines and a source excerpt, as real output has
            head, _, body = text.partition("\n")
            text = f"      ocamlc lib/.x.objs/byte/x.{{cmi,cmo}}\n{head}\n{d.line} | let x = 1\n        ^\n{body}"
        parts.append(text)
    assert parse_ocaml("".join(parts)) == diags


@given(st.lists(diagnostics(), max_size=3))
@settings(max_examples=50, deadline=None)
def test_build_dir_prefix_and_root_are_stripped(diags: list[Diagnostic]) -> None:
    text = "".join(render_ocaml(d) for d in diags)
    text = text.replace('File "', 'File "_build/default/')
    assert parse_ocaml(text) == diags
    abs_text = "".join(render_ocaml(d) for d in diags).replace('File "', 'File "/ws/root/')
    assert parse_ocaml(abs_text, root="/ws/root") == diags


@given(st.text(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_never_crashes(text: str) -> None:
    for name in PARSERS:
        for d in parse_diagnostics(text, name):
            assert isinstance(d, Diagnostic)
    classify(parse_ocaml(text))


@given(
    st.lists(
        st.sampled_from(
            [
                'File "a.ml", line 1, characters 2-3:',
                'File "a.ml", lines 1-4, characters 2-3:',
                'File "a.ml", line 9:',
                "1 | let x = y",
                "        ^",
                "Error: Unbound value y",
                "Error (warning 32 [unused-value-declaration]): unused value x.",
                "Warning 27 [unused-var-strict]: unused variable z.",
                "Alert deprecated: f",
                "       but an expression was expected of type",
                "Hint: try:",
                "(cd _build/default/test && ./t.exe)",
                "Testing `x'.",
                "> [FAIL]        s          0   a.",
                "│ [FAIL]        s          0   a.   │",
                'Called from T in file "test/t.ml", line 3, characters 1-2',
                "1 failure! in 0.001s. 1 test run.",
                "",
            ]
        ),
        max_size=30,
    )
)
@settings(max_examples=300, deadline=None)
def test_shuffled_real_fragments_never_crash(lines: list[str]) -> None:
    for d in parse_ocaml("\n".join(lines)):
        assert d.line >= 0 and d.col >= 0
        assert d.kind in {"syntax", "type", "unbound", "warning", "test", "other"}


def test_classify_order() -> None:
    def mk(kind: str, sev: Severity = Severity.ERROR) -> Diagnostic:
        return Diagnostic("a.ml", 1, 0, 1, 0, sev, "m", kind)

    assert classify([]) == "ok"
    assert classify([mk("warning", Severity.WARNING)]) == "ok"
    assert classify([mk("test")]) == "test"
    assert classify([mk("test"), mk("type")]) == "type"
    assert classify([mk("warning")]) == "type"  # warning-as-error stops the build
    assert classify([mk("type"), mk("syntax")]) == "syntax"


def test_gcc_style_parser() -> None:
    (d,) = parse_gcc_style("src/x.c:3:5: error: expected ';' before '}' token\nnoise\n")
    assert (d.file, d.line, d.col, d.severity, d.kind) == (
        "src/x.c",
        3,
        4,
        Severity.ERROR,
        "syntax",
    )


def test_unknown_language_names_the_choices() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: ocaml"):
        parse_diagnostics("", "ocamll")


def test_continuation_lines_starting_with_dune_action_names_stay_in_the_message() -> None:
    from bactrian.buildstatus.diagnostics import _ACTIONS

    for word in [*_ACTIONS, "refmt"]:
        d = Diagnostic("a.ml", 1, 0, 1, 0, Severity.ERROR, f"x\n{word} 0", "type")
        assert parse_ocaml(render_ocaml(d)) == [d], word
    # while dune's own right-aligned action lines are still skipped
    text = render_ocaml(Diagnostic("a.ml", 1, 0, 1, 0, Severity.ERROR, "x", "type"))
    assert parse_ocaml(text + "      ocamlc lib/.a.objs/byte/a.{cmi,cmo}\n")[0].message == "x"
