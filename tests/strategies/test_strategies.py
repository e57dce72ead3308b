"""Prompt strategies: one object lays out SFT, evaluation and sidecar prompts identically,
cuts to a token budget (and says what it cut), and parses each edit format back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bactrian.dataset.example import Example
from bactrian.dataset.splits import build_dataset, export_dataset, load_dataset, render_chat
from bactrian.dataset.store import ExampleDB
from bactrian.diffs import apply_to_files
from bactrian.errors import UnknownNameError
from bactrian.mine.config import MineConfig
from bactrian.mine.mining import mine_vcs
from bactrian.strategies import STRATEGIES, PromptInput, get_strategy
from tests.mine.repos import make_git


@pytest.fixture
def mined(tmp_path: Path) -> tuple[Path, list[Example]]:
    repo = make_git(tmp_path / "g")
    with ExampleDB() as db:
        mine_vcs(repo, "HEAD~4..HEAD", MineConfig(), db=db)
        examples = db.all()
    out = tmp_path / "ds"
    build_dataset(out, examples)
    _, loaded = load_dataset(out)
    return out, loaded


def test_dataset_export_eval_and_sidecar_prompts_are_byte_identical(
    mined: tuple[Path, list[Example]],
) -> None:
    from bactrian.evaluate.run import eval_prompt

    out, examples = mined
    ex = next(e for e in examples if e.files)
    export_dataset(out, "chat")
    exported = {}
    for split in ("train", "rl", "heldout"):
        for line in (out / "export" / "chat" / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            exported[row["id"]] = row["messages"]
    from_export = exported[ex.id][:2]  # system + user (the assistant turn is the target)
    from_eval = eval_prompt(ex, get_strategy()).messages
    sidecar_request = {"files": ex.files, "diagnostics": ex.diagnostics, "prompt": ex.prompt}
    from_sidecar = get_strategy().render(PromptInput.from_request(sidecar_request)).messages
    blob = [json.dumps(m, sort_keys=True).encode() for m in (from_export, from_eval, from_sidecar)]
    assert blob[0] == blob[1] == blob[2]
    assert render_chat(ex)[:2] == from_export
    assert exported[ex.id][2] == {"role": "assistant", "content": ex.diff}


def test_budget_cuts_unnamed_files_first_and_reports_it() -> None:
    inp = PromptInput(
        files={"lib/a.ml": "let a = 1\n" * 50, "lib/b.ml": "let b = 2\n" * 200, "lib/c.ml": "x\n"},
        diagnostics=[{"file": "lib/a.ml", "line": 3, "col": 1, "message": "boom"}],
        prompt="fix that error",
    )
    s = get_strategy()
    full = s.render(inp)
    assert full.cut == [] and full.budget is None
    cut = s.render(inp, count=len, budget=1200)  # count characters: a stand-in tokenizer
    assert cut.tokens <= 1200
    assert cut.cut[0].startswith("lib/b.ml: left out")
    assert "lib/a.ml" in cut.files_shown  # the file the diagnostics name stays
    tight = s.render(inp, count=len, budget=500)
    assert tight.tokens <= 500
    assert any("lib/a.ml: shortened to lines" in c for c in tight.cut)
    user = tight.messages[1]["content"]
    assert "let a = 1" in user and "Request: fix that error" in user


def test_budget_counts_with_the_given_tokenizer() -> None:
    inp = PromptInput(files={"a.ml": "let x = 1\n"}, prompt="add y")
    calls: list[str] = []

    def count(text: str) -> int:
        calls.append(text)
        return len(text.split())

    r = get_strategy().render(inp, count=count, budget=10_000)
    assert calls and r.tokens == sum(len(m["content"].split()) for m in r.messages)


@pytest.mark.parametrize("name", ["unified-diff", "search-replace", "whole-file"])
def test_each_edit_format_round_trips_the_gold_diff(
    name: str, mined: tuple[Path, list[Example]]
) -> None:
    _, examples = mined
    strategy = get_strategy(name)
    for ex in examples:
        if not ex.files:
            continue
        target = strategy.target(ex)
        parsed = strategy.parse(f"Here you go:\n\n{target}\n", ex.files)
        assert parsed.well_formed, (name, parsed.error, target)
        want, _ = apply_to_files(ex.files, ex.diff)
        got, _ = apply_to_files(ex.files, parsed.diff)
        assert got == want, name


def test_prose_is_not_well_formed() -> None:
    parsed = get_strategy().parse("I'll do it tomorrow.", {"a.ml": "let x = 1\n"})
    assert not parsed.well_formed and parsed.diff == ""
    assert "no code change" in (parsed.error or "")


def test_unknown_strategy_says_did_you_mean() -> None:
    assert set(STRATEGIES.names()) == {"unified-diff", "search-replace", "whole-file"}
    with pytest.raises(UnknownNameError, match="Did you mean: search-replace"):
        get_strategy("search-replace2")
