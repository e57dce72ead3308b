"""Context through the dune stanzas, on real git repositories (see ``dune_repos``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bactrian.dune import DuneIndex, map_line, parse_sexps
from bactrian.mine.config import MineConfig
from bactrian.mine.context import TreeContext
from bactrian.mine.mining import mine_vcs
from bactrian.mine.vcs import mine_history
from tests.mine import dune_repos


def _ctx(examples: list, commit_index: int = 0) -> list[str]:
    return sorted(examples[commit_index].context["files"])


def test_dune_files_are_read_as_stanzas() -> None:
    got = parse_sexps(
        "; c\n(library (name a) #;(modules x) (modules :standard \\ b))\n#| x |# (ocamllex l)"
    )
    assert got == [
        ["library", ["name", "a"], ["modules", ":standard", "\\", "b"]],
        ["ocamllex", "l"],
    ]
    index = DuneIndex(
        ["lib/dune", "lib/a.ml", "lib/b.ml", "lib/l.mll", "lib/c.cppo.ml"],
        {
            "lib/dune": "(library (name a) (modules :standard \\ b))\n(executable (name b) (modules b))\n"
            "(ocamllex l)\n(rule (targets c.ml) (deps c.cppo.ml) (action (run %{bin:cppo} %{deps} -o %{targets})))\n"
        },
    )
    lib = index.component_of("lib/a.ml")
    assert lib is not None and lib.kind == "library" and lib.modules == {"a", "l", "c"}
    exe = index.component_of("lib/b.ml")
    assert exe is not None and exe.kind == "executable"
    assert index.component_of("lib/l.mll") is lib
    assert index.source_of("lib/c.ml") == "lib/c.cppo.ml"
    assert index.module_files(lib, "c") == ["lib/c.cppo.ml"]


def test_an_mll_module_gets_its_interface_and_its_tests_not_a_same_named_module(
    tmp_path: Path,
) -> None:
    repo = dune_repos.lex_repo(tmp_path / "r")
    examples, _ = mine_history(repo, "HEAD~1..HEAD", MineConfig())
    assert _ctx(examples) == ["lib/read.mli", "lib/read.mll", "test/test_read.ml"]


def test_same_named_modules_in_other_libraries_stay_out(tmp_path: Path) -> None:
    repo = dune_repos.same_names_repo(tmp_path / "r")
    examples, _ = mine_history(repo, "HEAD~2..HEAD", MineConfig())
    util, test = examples
    # lib_a's util: its interface, the module the change names (Shape), the test that uses it
    assert _ctx([util]) == [
        "lib_a/shape.mli",
        "lib_a/util.ml",
        "lib_a/util.mli",
        "test/test_util.ml",
    ]
    # test.ml registers Test_util: that module comes, the other test.ml does not
    assert "test/test_util.ml" in test.context["files"]
    assert not any(p.startswith(("lib_b/", "test_b/")) for p in util.context["files"])
    assert not any(p.startswith(("lib_b/", "test_b/")) for p in test.context["files"])


def test_a_new_module_gets_the_file_its_code_moved_from_and_an_empty_context_says_why(
    tmp_path: Path,
) -> None:
    repo = dune_repos.extraction_repo(tmp_path / "r")
    result = mine_vcs(repo, "HEAD~2..HEAD", MineConfig(max_changed_lines=50))
    parts = [e for e in result.examples if e.base.get("commit") and e.kind == "vcs-part"]
    new_module = next(e for e in parts if "b/lib/format_.ml" in e.diff)
    assert "+++ b/lib/big.ml" not in new_module.diff, "the extraction is not split as expected"
    assert "lib/big.ml" in new_module.context["files"]
    assert "let fmt3 x = x + 3" in new_module.context["files"]["lib/big.ml"]
    tool = next(e for e in result.examples if "tools/gen.ml" in e.diff)
    assert tool.context["files"] == {}
    assert "new files" in tool.stats["context_empty_reason"]
    assert result.notes["context_empty"] == 1


def test_diagnostics_in_ocamllex_output_map_back_to_the_mll(tmp_path: Path) -> None:
    """A real dune build generates ``_build/default/lib/read.ml``; a position inside a copied
    action maps to the same code in ``lib/read.mll`` through its line directives."""
    repo = dune_repos.lex_repo(tmp_path / "r")
    subprocess.run(
        ["dune", "build", "--root", ".", "@check"], cwd=repo, check=True, capture_output=True
    )
    generated = (repo / "_build/default/lib/read.ml").read_text()
    line = next(i for i, x in enumerate(generated.splitlines(), 1) if 'Word ("#" ^ n)' in x)
    mll_line = next(
        i for i, x in enumerate(dune_repos.READ_MLL_2.splitlines(), 1) if 'Word ("#" ^ n)' in x
    )
    assert map_line(generated, line, "lib/read.ml") == ("lib/read.mll", mll_line)
    assert map_line(generated, 1, "lib/read.ml") is None
    files = [
        str(p.relative_to(repo))
        for p in repo.rglob("*")
        if p.is_file() and "_build" not in p.parts and ".git" not in p.parts
    ]
    ctx = TreeContext(files, lambda ps: {p: (repo / p).read_bytes() for p in ps})
    diag = {"file": "_build/default/lib/read.ml", "line": line, "end_line": line, "message": "x"}
    mapped = ctx.map_diagnostic(diag)
    assert (mapped["file"], mapped["line"], mapped["generated_file"]) == (
        "lib/read.mll",
        mll_line,
        "lib/read.ml",
    )
    choice = ctx.choose(["lib/read.ml"])
    assert "lib/read.mll" in choice.files and "other/read.ml" not in choice.files


def test_a_new_directory_gets_the_interfaces_of_the_library_it_uses(tmp_path: Path) -> None:
    from tests.mine.dune_repos import SAME_NAMES, git_repo

    repo = git_repo(
        tmp_path / "r",
        [
            ("initial", SAME_NAMES),
            (
                "add a tool",
                {
                    "tool/dune": "(executable (name main) (libraries lib_a))\n",
                    "tool/main.ml": "let () = print_int (Lib_a.Util.double 21)\n",
                },
            ),
        ],
    )
    (ex,) = mine_history(repo, "HEAD~1..HEAD", MineConfig())[0]
    assert sorted(ex.context["files"]) == ["lib_a/util.mli"]
