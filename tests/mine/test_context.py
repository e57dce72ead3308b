from __future__ import annotations

from bactrian.mine.context import is_test_path, module_stem, relevant_files

TREE = [
    "lib/ledger.ml",
    "lib/ledger.mli",
    "lib/money.ml",
    "lib/money.mli",
    "test/test_ledger.ml",
    "test/money_test.ml",
    "bin/main.ml",
    "README.md",
]


def test_module_stems_and_test_paths() -> None:
    assert module_stem("lib/ledger.mli") == "ledger"
    assert module_stem("test/test_ledger.ml") == "ledger"
    assert module_stem("test/money_test.ml") == "money"
    assert is_test_path("test/x.ml") and is_test_path("src/test_x.ml")
    assert not is_test_path("lib/ledger.ml")


def test_siblings_of_seeds_from_the_base_tree_only() -> None:
    got = relevant_files(["lib/ledger.ml", "lib/new_module.ml"], TREE)
    assert got == ["lib/ledger.ml", "lib/ledger.mli", "test/test_ledger.ml"]
    assert relevant_files(["README.md"], TREE) == ["README.md"]


def test_limit_keeps_seeds_before_siblings() -> None:
    got = relevant_files(["lib/money.ml", "bin/main.ml"], TREE, limit=2)
    assert got == ["bin/main.ml", "lib/money.ml"]
    assert len(relevant_files(["lib/money.ml", "lib/ledger.ml"], TREE)) == 6
