"""Model output → change set, in each of the three edit formats."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bactrian.diffs import apply_to_files, extract_changes, normalize_patch, parse_patch
from bactrian.errors import DiffApplyError, DiffParseError

FILES = {
    "src/calc.ml": "let add a b = a + b\n\nlet sub a b = a - b\n\nlet mul a b = a * b\n",
    "src/calc.mli": "val add : int -> int -> int\nval sub : int -> int -> int\n",
}


def _applied(completion: str, files: dict[str, str] = FILES) -> dict[str, str]:
    cs = extract_changes(completion, files)
    assert cs, cs.warnings
    # the change set renders to a diff that parses and applies to the files
    out, result = apply_to_files(files, parse_patch(cs.render()), lenient=True)
    assert result.ok, result.summary()
    return {p: b.decode() for p, b in out.items()}


def test_fenced_unified_diff_in_prose() -> None:
    completion = (
        "The bug is in `sub`. Here is the fix:\n\n```diff\n--- a/src/calc.ml\n+++ b/src/calc.ml\n"
        "@@ ... @@\n-let sub a b = a - b\n+let sub a b = a - b (* checked *)\n```\n\n"
        "- This keeps the interface.\n"
    )
    cs = extract_changes(completion)
    assert cs.formats == ["diff"] and cs.paths() == ["src/calc.ml"]
    out = _applied(completion)
    assert "(* checked *)" in out["src/calc.ml"]


def test_unfenced_diff_in_prose() -> None:
    completion = (
        "Apply this:\ndiff --git a/src/calc.mli b/src/calc.mli\n--- a/src/calc.mli\n"
        "+++ b/src/calc.mli\n@@ -1,2 +1,3 @@\n val add : int -> int -> int\n"
        " val sub : int -> int -> int\n+val mul : int -> int -> int\n"
    )
    out = _applied(completion)
    assert out["src/calc.mli"].endswith("val mul : int -> int -> int\n")


def test_search_replace_blocks() -> None:
    completion = (
        "I'll change two functions.\n\nsrc/calc.ml\n```ocaml\n<<<<<<< SEARCH\n"
        "let add a b = a + b\n=======\nlet add a b = b + a\n>>>>>>> REPLACE\n```\n\n"
        "src/calc.ml\n```ocaml\n<<<<<<< SEARCH\n  let mul a b = a * b\n=======\n"
        "let mul a b = b * a\n>>>>>>> REPLACE\n```\n"
        "**src/new.ml**\n```ocaml\n<<<<<<< SEARCH\n=======\nlet fresh = 1\n>>>>>>> REPLACE\n```\n"
    )
    cs = extract_changes(completion, FILES)
    assert cs.formats == ["search-replace"]
    out = _applied(completion)
    assert out["src/calc.ml"] == (
        "let add a b = b + a\n\nlet sub a b = a - b\n\nlet mul a b = b * a\n"
    )
    assert out["src/new.ml"] == "let fresh = 1\n"


@pytest.mark.parametrize(
    ("search", "error"),
    [("let div a b = a / b\n", "is not in the file"), ("b\n", "occurs 3 times")],
)
def test_search_that_does_not_match_once_is_an_error(search: str, error: str) -> None:
    completion = f"src/calc.ml\n<<<<<<< SEARCH\n{search}=======\nx\n>>>>>>> REPLACE\n"
    with pytest.raises(DiffApplyError, match=error):
        extract_changes(completion, FILES)


def test_search_replace_needs_the_file_and_a_name() -> None:
    with pytest.raises(DiffApplyError, match="contents were not given"):
        extract_changes("src/calc.ml\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n")
    with pytest.raises(DiffParseError, match="no file name"):
        extract_changes("<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n", FILES)


def test_whole_file_outputs() -> None:
    completion = (
        "Here is the new interface:\n\n```ocaml src/calc.mli\nval add : int -> int -> int\n```\n"
        "And a new test file:\n\nFile: `test/test_calc.ml`\n```ocaml\nlet () = assert true\n```\n"
        "An unlabelled snippet is ignored:\n```ocaml\nlet x = 1\n```\n"
    )
    cs = extract_changes(completion, FILES)
    assert cs.formats == ["whole-file"]
    assert cs.paths() == ["src/calc.mli", "test/test_calc.ml"]
    out = _applied(completion)
    assert out["src/calc.mli"] == "val add : int -> int -> int\n"
    assert out["test/test_calc.ml"] == "let () = assert true\n"


def test_no_edit_gives_an_empty_change_set() -> None:
    cs = extract_changes("I am not sure what you mean. Could you clarify?")
    assert not cs and cs.render() == "" and cs.warnings


def test_headerless_hunks_go_to_the_one_file_given() -> None:
    completion = "```diff\n@@ -3 +3 @@\n-let sub a b = a - b\n+let sub a b = b - a\n```\n"
    one = {"src/calc.ml": FILES["src/calc.ml"]}
    out = _applied(completion, one)
    assert "let sub a b = b - a" in out["src/calc.ml"]
    with pytest.raises(DiffParseError, match="no '---'/'\\+\\+\\+' file header"):
        extract_changes(completion, FILES)
    labelled = "src/calc.ml\n" + completion
    assert extract_changes(labelled, FILES).paths() == ["src/calc.ml"]


def test_normalize_turns_a_sloppy_model_diff_into_a_clean_one(tmp_path: Path) -> None:
    completion = (
        "```diff\n--- a/src/calc.ml\n+++ b/src/calc.ml\n@@\n let add a b = a + b\n"
        " \n-  let sub a b = a - b\n+let sub a b = b - a\n```\n"
    )
    patch = extract_changes(completion, FILES).to_patch()
    text, result = normalize_patch(FILES, patch)
    assert result.ok and result.rungs() == {"whitespace": 1}
    assert "@@ -1," in text and "-let sub a b = a - b\n" in text
    # the clean diff applies strictly, also with git apply
    out, strict = apply_to_files(FILES, text)
    assert strict.ok and b"let sub a b = b - a" in out["src/calc.ml"]
    for p, content in FILES.items():
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text(content)
    (tmp_path / "d.patch").write_text(text)
    subprocess.run(["git", "apply", "--check", "d.patch"], cwd=tmp_path, check=True)
    bad, failed = normalize_patch(FILES, completion.replace("a - b", "a / b"))
    assert bad == "" and not failed.ok
