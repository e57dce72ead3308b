from __future__ import annotations

import pytest

from bactrian.dataset.example import Example
from bactrian.mine.describe import (
    DESCRIBERS,
    DeterministicDescriber,
    LLMDescriber,
    check_prompt,
    describe_examples,
    make_describer,
)
from bactrian.mine.prompts import leaks, prompt_problems
from bactrian.mine.textdiff import render
from bactrian.models import ModelConfig, OpenAICompatibleBackend
from bactrian.types import Diagnostic, Severity
from tests.models.fake_openai import FakeOpenAI

MONEY = "type t = int\n\nlet of_int x = x\nlet add a b = a + b\n"
MONEY_NEW = (
    MONEY
    + 'let to_string t =\n  let cents = abs t mod 100 in\n  Printf.sprintf "%d.%02d" (t / 100) cents\n'
)


def change() -> Example:
    return Example(
        "t",
        "change",
        render({"money.ml": MONEY.encode()}, {"money.ml": MONEY_NEW.encode()}),
        context={"files": {"money.ml": MONEY}, "diagnostics": []},
        base={"k": 1},
    )


def fix(kind: str = "type") -> Example:
    bad = "let total xs = List.fold_left Money.add 0 xs\n"
    good = "let total xs = List.fold_left Money.add Money.zero xs\n"
    d = Diagnostic(
        "lib/ledger.ml",
        1,
        40,
        1,
        41,
        Severity.ERROR,
        "This expression has type int but an expression was expected of type\nMoney.t",
        kind,
    )
    return Example(
        "t",
        "fix",
        render({"lib/ledger.ml": bad.encode()}, {"lib/ledger.ml": good.encode()}),
        context={"files": {"lib/ledger.ml": bad}, "diagnostics": [d.to_dict()]},
        base={"k": 2},
    )


def test_deterministic_fix_prompt_keeps_the_diagnostics() -> None:
    d = DeterministicDescriber().describe(fix())
    first, rest = d.prompt.split("\n\n", 1)
    assert first == "fix the type error in ledger.ml"
    assert rest.startswith("lib/ledger.ml:1:40: error: This expression has type int")
    assert "Money.t" in rest
    assert check_prompt(d.prompt, fix()) == []
    assert (
        DeterministicDescriber()
        .describe(fix("syntax"))
        .prompt.startswith("fix the syntax error in ledger.ml")
    )


def test_deterministic_change_prompt_names_the_new_definition() -> None:
    d = DeterministicDescriber().describe(change())
    assert d.prompt == "add a to_string for t"
    assert d.source == "diff-summary"
    assert "to_string" in d.description and "money.ml" in d.description
    assert check_prompt(d.prompt, change()) == []


@pytest.mark.parametrize(
    ("prompt", "problem"),
    [
        ("This change adds a function", "not imperative"),
        ("add it\n```ocaml\nlet x = 1\n```", "code block"),
        ("add " + "very " * 30 + "much", "too long"),
        ("fix", "too short"),
        ("", "empty"),
    ],
)
def test_prompt_filter_rejects(prompt: str, problem: str) -> None:
    assert any(problem in p for p in prompt_problems(prompt)), prompt_problems(prompt)


def test_prompt_filter_accepts_editor_style() -> None:
    for p in ["fix the type error in ledger.ml", "add a to_string for t", "rename total to sum"]:
        assert prompt_problems(p) == []


def test_leak_check_catches_copied_code_and_new_identifiers() -> None:
    ex = change()
    ctx = ex.files.values()
    copied = leaks('add to_string using Printf.sprintf "%d.%02d" (t / 100) cents', ex.diff, ctx)
    assert any("copies new code" in p for p in copied)
    local = leaks("add to_string computing cents with abs", ex.diff, ctx)
    assert any("'cents'" in p for p in local)
    # the name of the new definition may be asked for; known context names are fine
    assert leaks("add a to_string for t", ex.diff, ctx) == []
    assert leaks("make add commutative", ex.diff, ctx) == []


def test_llm_describer_two_steps_against_a_real_server() -> None:
    with FakeOpenAI(
        [
            "The change adds a to_string function to Money that prints amounts as units.cents.",
            "Add a to_string for t.",
        ]
    ) as server:
        backend = OpenAICompatibleBackend(server.base_url, "m", backoff_s=0.01)
        d = LLMDescriber(backend).describe(change())
    assert d.source == "llm"
    assert d.prompt == "add a to_string for t"
    assert d.description.startswith("The change adds a to_string")
    first, second = server.requests
    assert "+let to_string t =" in first["messages"][1]["content"]
    assert second["messages"][1]["content"] == d.description
    assert "editor" in second["messages"][0]["content"]


def test_llm_describer_keeps_fix_diagnostics_and_falls_back_on_leaks() -> None:
    with FakeOpenAI(
        [
            "The fold started from 0.",
            "start the fold from Money.zero",  # fine: Money.zero is not in the context... leak
            "The fold started from 0.",
            "fix the type error in ledger.ml",
        ]
    ) as server:
        llm = LLMDescriber(OpenAICompatibleBackend(server.base_url, "m"))
        leaky = llm.describe(fix())
        good = llm.describe(fix())
    assert leaky.source == "diagnostics"
    assert leaky.rejected and any("zero" in r for r in leaky.rejected)
    assert leaky.prompt.startswith("fix the type error in ledger.ml\n\nlib/ledger.ml:1:40")
    assert good.source == "llm"
    assert good.prompt.startswith("fix the type error in ledger.ml\n\nlib/ledger.ml:1:40: error:")


def test_make_describer_defaults_and_counts() -> None:
    assert make_describer("", ModelConfig()).name == "deterministic"
    assert sorted(DESCRIBERS) == ["deterministic", "llm"]
    with FakeOpenAI(["detail", "add a to_string for t"]) as server:
        d = make_describer("", ModelConfig(base_url=server.base_url, model="m"))
        assert d.name == "llm"
        examples = [change()]
        counts = describe_examples(examples, d)
    assert counts["by_source"] == {"llm": 1}
    assert examples[0].prompt == "add a to_string for t"
    assert examples[0].stats["prompt_source"] == "llm"


def test_llm_model_error_falls_back_and_is_counted() -> None:
    with FakeOpenAI([(400, "context length exceeded")]) as server:
        llm = LLMDescriber(OpenAICompatibleBackend(server.base_url, "m", backoff_s=0.01))
        examples = [change()]
        counts = describe_examples(examples, llm)
    assert examples[0].prompt == "add a to_string for t"
    assert counts["by_source"] == {"diff-summary": 1}
    assert counts["rejected"] == {"model error": 1}


def test_newer_schema_is_refused_clearly() -> None:
    from bactrian.errors import MiningError

    d = change().to_dict()
    d["schema_version"] = 99
    with pytest.raises(MiningError, match="upgrade bactrian"):
        Example.from_dict(d)
