"""The leak audit on a labelled corpus of leaking and clean prompts, built here from real
diffs: every leaking prompt is caught, no clean one is flagged."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bactrian.mine.prompts import leaks, tokens
from bactrian.mine.textdiff import render

MONEY = "type t = int\n\nlet of_int x = x\nlet add a b = a + b\n"
MONEY_NEW = (
    MONEY
    + "let to_string t =\n"
    + "  let cents = abs t mod 100 in\n"
    + '  Printf.sprintf "%d.%02d" (t / 100) cents\n'
)
LEDGER = "let total xs = List.fold_left Money.add 0 xs\n"
LEDGER_NEW = "let total xs = List.fold_left Money.add Money.zero xs\n"
LEDGER_DIAG = (
    "lib/ledger.ml:1:40: error: This expression has type int but an expression was "
    "expected of type\nMoney.t"
)
GLOB = "let rec parse = function\n  | [] -> []\n  | c :: rest -> c :: parse rest\n"
GLOB_NEW = (
    "let rec parse = function\n"
    "  | [] -> []\n"
    "  (* fix double star parsing: two stars are one token *)\n"
    "  | '*' :: '*' :: rest -> Double_star :: parse rest\n"
    "  | c :: rest -> Char c :: parse rest\n"
)
GLOB_SUBJECT = "fix(glob): double star parsing (#12)"
SHAPE = "type shape = Circle of float\n\nlet area = function Circle r -> 3.14 *. r *. r\n"
SHAPE_NEW = (
    "type shape = Circle of float | Square of float\n\n"
    "let area = function Circle r -> 3.14 *. r *. r | Square s -> s *. s\n"
)


@dataclass
class Case:
    name: str
    prompt: str
    old: dict[str, str]
    new: dict[str, str]
    intent: str
    leaking: bool


def corpus() -> list[Case]:
    money = ({"lib/money.ml": MONEY}, {"lib/money.ml": MONEY_NEW})
    ledger = ({"lib/ledger.ml": LEDGER}, {"lib/ledger.ml": LEDGER_NEW})
    glob = ({"lib/glob.ml": GLOB}, {"lib/glob.ml": GLOB_NEW})
    shape = ({"lib/shape.ml": SHAPE}, {"lib/shape.ml": SHAPE_NEW})
    return [
        # clean: what a developer would type
        Case("names the new definition", "add a to_string for t", *money, "", False),
        Case("known name", "make add commutative", *money, "", False),
        Case("the subject says so", "fix double star parsing in glob", *glob, GLOB_SUBJECT, False),
        Case("fix from the error", "fix the type error in ledger.ml", *ledger, LEDGER_DIAG, False),
        Case("error names the type", "use a Money.t as the start", *ledger, LEDGER_DIAG, False),
        Case("a new case, named", "handle squares in area", *shape, "", False),
        Case(
            "subject names the constructor",
            "add a Square case to shape",
            *shape,
            "Add a Square case to shape",
            False,
        ),
        Case("plain words", "print amounts with two decimals", *money, "", False),
        # leaking: the answer, or a piece of it only the new code has
        Case(
            "copies a new line",
            'add to_string: Printf.sprintf "%d.%02d" (t / 100) cents',
            *money,
            "",
            True,
        ),
        Case("a format string and its args", 'format with "%d.%02d" (t', *money, "", True),
        Case("an expression from the answer", "divide with t / 100 in to_string", *money, "", True),
        Case("a new local", "add to_string computing cents with abs", *money, "", True),
        Case(
            "the value the fix needs", "start the fold from Money.zero", *ledger, LEDGER_DIAG, True
        ),
        Case(
            "a constructor nobody named", "map two stars to Double_star", *glob, GLOB_SUBJECT, True
        ),
        Case(
            "a pattern from the answer",
            "match '*' :: '*' :: rest in parse",
            *glob,
            GLOB_SUBJECT,
            True,
        ),
        Case(
            "a new constructor, unnamed by the intent",
            "add Square to shape",
            *shape,
            "extend the shapes",
            True,
        ),
        Case(
            "copies the new comment",
            "fix double star parsing: two stars are one token",
            *glob,
            "",
            True,
        ),
    ]


def _audit(case: Case) -> list[str]:
    diff = render(
        {k: v.encode() for k, v in case.old.items()}, {k: v.encode() for k, v in case.new.items()}
    )
    # new top-level definitions may be named (asking for them is asking for the change); new
    # constructors, locals and helpers only where the intent names them
    return leaks(case.prompt, diff, case.old.values(), intent=case.intent)


@pytest.mark.parametrize("case", corpus(), ids=lambda c: c.name)
def test_the_audit_labels_each_prompt_right(case: Case) -> None:
    found = _audit(case)
    assert bool(found) == case.leaking, found


def test_the_corpus_is_balanced_and_the_audit_is_exact_on_it() -> None:
    cases = corpus()
    leaking = [c for c in cases if c.leaking]
    assert len(leaking) >= 8 and len(cases) - len(leaking) >= 8
    caught = sum(1 for c in leaking if _audit(c))
    false_alarms = sum(1 for c in cases if not c.leaking and _audit(c))
    assert (caught, false_alarms) == (len(leaking), 0)


def test_new_top_level_definitions_are_allowed_by_default() -> None:
    diff = render({"m.ml": MONEY.encode()}, {"m.ml": MONEY_NEW.encode()})
    assert leaks("add to_string to money", diff, [MONEY]) == []
    assert leaks("add to_string to money", diff, [MONEY], allowed=set()) != []


def test_string_literals_are_one_token() -> None:
    assert tokens('Printf.sprintf "%d.%02d" (t / 100)') == [
        "Printf",
        ".",
        "sprintf",
        '"%d.%02d"',
        "(",
        "t",
        "/",
        "100",
        ")",
    ]
