"""Commit subjects rewritten into the editor style, and messages cleaned of what no model could
know (issue numbers, handles, trailers)."""

from __future__ import annotations

import pytest

from bactrian.dataset.example import Example
from bactrian.mine.describe import DeterministicDescriber, part_intents
from bactrian.mine.intent import clauses, clean_message, editor_style, subject_prompt
from bactrian.mine.prompts import prompt_problems
from bactrian.mine.summary import meaning
from bactrian.mine.textdiff import render


@pytest.mark.parametrize(
    ("subject", "prompt"),
    [
        ("fix(glob): double star parsing", "fix double star parsing in glob"),
        ("fix(glob): double star parsing (#123)", "fix double star parsing in glob"),
        ("feat(parser)!: support unicode escapes", "support unicode escapes in parser"),
        ("Added support for `**` patterns, thanks @x", "add support for ** patterns"),
        ("Fixes #12: crash on empty input", "fix crash on empty input"),
        ("Fix a bug in the parser (closes #3, #4)", "fix a bug in the parser"),
        ("Use Format instead of Printf (GH-12) by @bob", "use Format instead of Printf"),
        ("Remove deprecated functions. See owner/repo#33", "remove deprecated functions"),
        ("glob: fix double star", "fix double star in glob"),
        ("[lexer] handle tabs", "handle tabs in lexer"),
        ("Support for CRLF", "add support for CRLF"),
        ("Better error messages for missing files", "improve error messages for missing files"),
        ("chore(deps): bump dune to 3.0", "bump dune to 3.0"),
        ("test: parse of empty string", "test parse of empty string"),
        ("Time parsing.", "parse time"),
        ("Ordinal dates support added.", "add ordinal dates support"),
        ("Partially implemented date actions.", "implement date actions partially"),
        ("Attempt to fix daylight saving time offset.", "fix daylight saving time offset"),
        ("Wrong cast correction", "correct wrong cast"),
        ("Little factorisation of whirlpool_do_chunk", "factorise whirlpool_do_chunk"),
        ("tm.tm_isdst -> tm.Unix.tm_isdst.", "replace tm.tm_isdst with tm.Unix.tm_isdst"),
        ("Version 2.0.1.", "bump the version to 2.0.1"),
        ("Re-organize digestif", "reorganize digestif"),
        ("Made opam file pass 'opam lint'", "make opam file pass 'opam lint'"),
        ('Revert "add foo to bar"', "revert: add foo to bar"),
        ("[skip ci] Tidy the lexer", "tidy the lexer"),
    ],
)
def test_subjects_in_the_editor_style(subject: str, prompt: str) -> None:
    assert editor_style(subject) == prompt
    assert prompt_problems(prompt) == []


@pytest.mark.parametrize(
    "subject",
    ["wip", "Merge branch 'main' into dev", "Fix for #12", "update", "...", "Fixes #3"],
)
def test_subjects_without_intent_give_none(subject: str) -> None:
    assert editor_style(subject) is None


def test_a_github_merge_commit_uses_the_pr_title() -> None:
    msg = "Merge pull request #45 from alice/fix-lexer\n\nHandle tabs in the lexer"
    assert subject_prompt(msg) == "handle tabs in the lexer"


def test_clean_message_strips_trailers_references_and_handles() -> None:
    msg = (
        "fix(glob): double star parsing (#123)\n\n"
        "Two stars were read as one, reported by @carol, see https://example.com/9 and GH-7.\n"
        "See #9.\n\n"
        "Signed-off-by: Dev <dev@example.com>\n"
        "Co-authored-by: Alice <alice@example.com>\n"
        "Reviewed-by: Bob <bob@example.com>\n"
        "Change-Id: I0123456789abcdef\n"
    )
    clean = clean_message(msg)
    assert clean == "fix(glob): double star parsing\n\nTwo stars were read as one."
    for gone in ("#123", "@carol", "https://", "GH-7", "Signed-off-by", "alice@", "Change-Id"):
        assert gone not in clean, gone


def test_clauses() -> None:
    assert clauses("add the stats module and use it in report") == [
        "add the stats module",
        "use it in report",
    ]
    assert clauses("add x, y and z") == ["add x", "add y", "add z"]
    assert clauses("fix the lexer") == ["fix the lexer"]


def test_a_part_without_a_matching_clause_gets_what_it_does_with_the_commit_intent() -> None:
    old = {"lib/stats.ml": b"let f0 x = x\n"}
    new = {"lib/stats.ml": b"let f0 x = x\nlet mean xs = xs\n"}
    m = meaning(render(old, new), {"lib/stats.ml": "let f0 x = x\n"})
    cands = part_intents("rework the numbers", m, m.prompt())
    assert cands[0] == ("add mean to stats.ml (part of: rework the numbers)", "commit-message")
    assert cands[-1] == ("rework the numbers", "commit-message")


SHAPE = (
    "type shape = Circle of float | Square of float\n\n"
    "let area = function\n  | Circle r -> r *. r\n  | _ -> 0.\n"
)


def _change(old: dict[str, str], new: dict[str, str], message: str = "") -> Example:
    base = {"type": "git", "message": message} if message else {"k": 1}
    return Example(
        "t",
        "change",
        render({k: v.encode() for k, v in old.items()}, {k: v.encode() for k, v in new.items()}),
        context={"files": old, "diagnostics": []},
        base=base,
    )


@pytest.mark.parametrize(
    ("old", "new", "prompt"),
    [
        (  # a new case in a match
            {"lib/shape.ml": SHAPE},
            {"lib/shape.ml": SHAPE.replace("  | _ ->", "  | Square s -> s *. s\n  | _ ->")},
            "handle Square in area",
        ),
        (  # a function inside a functor: the function, not the functor
            {"lib/m.ml": "module Make (X : S) = struct\n  let size t =\n    t + 1\nend\n"},
            {"lib/m.ml": "module Make (X : S) = struct\n  let size t =\n    t + 2\nend\n"},
            "change size in m.ml",
        ),
        (  # a new module used by an existing one
            {"lib/report.ml": "let total = 0\n"},
            {"lib/report.ml": "let total = Stats.sum []\n", "lib/stats.ml": "let sum _ = 0\n"},
            "add a Stats module and use it in report.ml",
        ),
        (  # a new test exercising a known function
            {"lib/glob.ml": "let parse s = s\n", "test/test_glob.ml": "let () = ()\n"},
            {
                "lib/glob.ml": "let parse s = s\n",
                "test/test_glob.ml": 'let () = ()\nlet () = assert (Glob.parse "a" = "a")\n',
            },
            "add a test for Glob.parse",
        ),
        (  # a library in a dune file
            {"lib/dune": "(library (name glob))\n"},
            {"lib/dune": "(library (name glob) (libraries fmt))\n"},
            "depend on fmt in lib",
        ),
        (  # a rename
            {"lib/m.ml": "let old_name x = x\n"},
            {"lib/m.ml": "let new_name x = x\n"},
            "rename old_name to new_name in m.ml",
        ),
    ],
)
def test_diff_summaries_say_what_the_change_means(
    old: dict[str, str], new: dict[str, str], prompt: str
) -> None:
    d = DeterministicDescriber().describe(_change(old, new))
    assert (d.prompt, d.source) == (prompt, "diff-summary")


def test_a_type_from_the_interface_reaches_the_description_not_the_prompt() -> None:
    old = {"lib/money.ml": "type t = int\n", "lib/money.mli": "type t\n"}
    new = {
        "lib/money.ml": "type t = int\nlet to_string t = string_of_int t\n",
        "lib/money.mli": "type t\nval to_string : t -> string\n",
    }
    d = DeterministicDescriber().describe(_change(old, new))
    assert d.prompt == "add a to_string for t"
    assert "to_string : t -> string" in d.description


def test_update_file_is_the_last_resort_and_a_one_word_subject_gets_its_module() -> None:
    old = {"src/stubs.c": "int x;\n"}
    new = {"src/stubs.c": "int y;\n"}
    d = DeterministicDescriber().describe(_change(old, new))
    assert (d.prompt, d.source) == ("update stubs.c", "fallback")
    ml_old = {"lib/m.ml": "let f x =\n  x + 1\n"}
    ml_new = {"lib/m.ml": "let f x =\n  x +   1\n"}
    d = DeterministicDescriber().describe(_change(ml_old, ml_new, "Format"))
    assert (d.prompt, d.source) == ("format m.ml", "commit-message")


def test_a_subject_that_looks_like_a_trailer_is_kept() -> None:
    msg = "Bugfix: Handle local mktime offset.\n\nFixes: #3\nBug: 12"
    assert clean_message(msg) == "Bugfix: Handle local mktime offset."
    assert subject_prompt(msg) == "handle local mktime offset"
