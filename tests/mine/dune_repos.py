"""Real git repositories of small dune projects whose histories reproduce what the miner got
wrong on real OCaml libraries: a ``.mll`` module, same-named modules in different libraries,
an extraction into a new module, a split whose naive order breaks the build, a ``bench/``
directory that needs a library that is not installed."""

from __future__ import annotations

from pathlib import Path

from tests.mine.repos import ENV, sh

Files = dict[str, str | None]


def git_repo(root: Path, commits: list[tuple[str, Files]], start: int = 1_700_000_000) -> Path:
    root.mkdir(parents=True)
    sh(root, "git", "init", "-q", "-b", "main")
    for i, (msg, files) in enumerate(commits):
        for path, text in files.items():
            target = root / path
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        sh(root, "git", "add", "-A")
        date = f"{start + 3600 * i} +0000"
        sh(
            root,
            "git",
            "commit",
            "-q",
            "-m",
            msg,
            env=dict(ENV, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date),
        )
    return root


READ_MLL = """{
  type token = Word of string | Eof
}
rule token = parse
  | [' ' '\\t' '\\n'] { token lexbuf }
  | ['a'-'z']+ as w { Word w }
  | eof { Eof }
"""

READ_MLL_2 = READ_MLL.replace(
    "| eof { Eof }", "| ['0'-'9']+ as n { Word (\"#\" ^ n) }\n  | eof { Eof }"
)

LEX_PROJECT: Files = {
    "dune-project": "(lang dune 2.9)\n",
    "lib/dune": "(library (name lexlib))\n(ocamllex read)\n",
    "lib/read.mll": READ_MLL,
    "lib/read.mli": "type token = Word of string | Eof\nval token : Lexing.lexbuf -> token\n",
    "test/dune": "(test (name test_read) (libraries lexlib))\n",
    "test/test_read.ml": (
        'let () =\n  match Lexlib.Read.token (Lexing.from_string "ab") with\n'
        '  | Lexlib.Read.Word "ab" -> ()\n  | _ -> exit 1\n'
    ),
    # same-named module in another library, and a test of that other library
    "other/dune": "(library (name other))\n",
    "other/read.ml": "let token () = 0\n",
    "other/read.mli": "val token : unit -> int\n",
    "other_test/dune": "(test (name test_read) (libraries other))\n",
    "other_test/test_read.ml": "let () = assert (Other.Read.token () = 0)\n",
}


def lex_repo(root: Path) -> Path:
    return git_repo(
        root,
        [("initial", LEX_PROJECT), ("lex numbers as words", {"lib/read.mll": READ_MLL_2})],
    )


SAME_NAMES: Files = {
    "dune-project": "(lang dune 2.9)\n",
    "lib_a/dune": "(library (name lib_a))\n",
    "lib_a/util.ml": "let double x = 2 * x\n",
    "lib_a/util.mli": "val double : int -> int\n",
    "lib_a/shape.ml": "type t = Square of int\n",
    "lib_a/shape.mli": "type t = Square of int\n",
    "lib_b/dune": "(library (name lib_b))\n",
    "lib_b/util.ml": "let triple x = 3 * x\n",
    "lib_b/util.mli": "val triple : int -> int\n",
    "test/dune": "(test (name test) (libraries lib_a))\n",
    "test/test.ml": "let () = Test_util.run ()\n",
    "test/test_util.ml": "let run () = assert (Lib_a.Util.double 2 = 4)\n",
    "test_b/dune": "(test (name test) (libraries lib_b))\n",
    "test_b/test.ml": "let () = assert (Lib_b.Util.triple 1 = 3)\n",
}


def same_names_repo(root: Path) -> Path:
    return git_repo(
        root,
        [
            ("initial", SAME_NAMES),
            (
                "util: area of a shape",
                {
                    "lib_a/util.ml": "let double x = 2 * x\nlet area (Shape.Square s) = s * s\n",
                    "lib_a/util.mli": "val double : int -> int\nval area : Shape.t -> int\n",
                },
            ),
            (
                "test: register the shape tests",
                {
                    "test/test.ml": "let () = Test_util.run (); Test_shape.run ()\n",
                    "test/test_shape.ml": "let run () = assert (Lib_a.Util.area (Lib_a.Shape.Square 2) = 4)\n",
                },
            ),
        ],
    )


def _fns(prefix: str, n: int) -> str:
    return "".join(f"let {prefix}{i} x = x + {i}\n" for i in range(n))


BIG_BEFORE = "let keep = 1\n" + _fns("fmt", 30) + "let last = 2\n"


def extraction_repo(root: Path) -> Path:
    """A commit moves 30 functions out of ``lib/big.ml`` into a new ``lib/format.ml`` and
    makes big use it (60 changed lines + more: split at 40 lines)."""
    after_big = "let keep = 1\nlet last = 2\n" + "".join(
        f"let use{i} = Format_.fmt{i} {i}\n" for i in range(12)
    )
    return git_repo(
        root,
        [
            (
                "initial",
                {
                    "dune-project": "(lang dune 2.9)\n",
                    "lib/dune": "(library (name big))\n",
                    "lib/big.ml": BIG_BEFORE,
                    "lib/other.ml": "let x = 1\n",
                },
            ),
            (
                "extract the formatters into their own module",
                {"lib/big.ml": after_big, "lib/format_.ml": _fns("fmt", 30)},
            ),
            ("add a standalone tool", {"tools/gen.ml": 'let () = print_endline "gen"\n'}),
        ],
    )


VIEW_ML = "".join(f"let v{i} x = x * {i}\n" for i in range(20))
VIEW_MLI = "".join(f"val v{i} : int -> int\n" for i in range(20))


def view_repo(root: Path) -> Path:
    """``lib/alpha.ml`` gains ``module View = View`` and uses of it in the same commit that
    creates ``lib/view.ml``: a naive (path) order puts alpha first, which does not build."""
    alpha_after = "let base = 1\nmodule View = View\n" + "".join(
        f"let a{i} = View.v{i} {i}\n" for i in range(20)
    )
    return git_repo(
        root,
        [
            (
                "initial",
                {
                    "dune-project": "(lang dune 2.9)\n",
                    "lib/dune": "(library (name app))\n",
                    "lib/alpha.ml": "let base = 1\n",
                },
            ),
            (
                "add the view",
                {"lib/alpha.ml": alpha_after, "lib/view.ml": VIEW_ML, "lib/view.mli": VIEW_MLI},
            ),
        ],
    )


def signature_repo(root: Path) -> Path:
    """``lib/helpers.ml``'s functions gain an argument and ``lib/zeta.ml``'s calls follow; the
    planner cannot see that the callers break in between (split at 40 lines)."""
    n = 22
    before_h = "".join(f"let h{i} x = x + {i}\n" for i in range(n))
    after_h = "".join(f"let h{i} x y = x + y + {i}\n" for i in range(n))
    before_z = "".join(f"let z{i} : int = Helpers.h{i} {i}\n" for i in range(n))
    after_z = "".join(f"let z{i} : int = Helpers.h{i} {i} {i}\n" for i in range(n))
    return git_repo(
        root,
        [
            (
                "initial",
                {
                    "dune-project": "(lang dune 2.9)\n",
                    "lib/dune": "(library (name sig))\n",
                    "lib/helpers.ml": before_h,
                    "lib/zeta.ml": before_z,
                },
            ),
            ("helpers take a second argument", {"lib/helpers.ml": after_h, "lib/zeta.ml": after_z}),
        ],
    )


def bench_project(package_bench: bool = False, fuzz: bool = False) -> Files:
    bench = "(executable (name b) (libraries core_bench mylib))\n"
    if package_bench:
        bench = "(executable (name b) (public_name b) (package mylib-bench) (libraries core_bench mylib))\n"
    files: Files = {
        "dune-project": "(lang dune 2.9)\n",
        "mylib.opam": "",
        "lib/dune": "(library (name mylib) (public_name mylib))\n",
        "lib/a.ml": "let x = 1\n",
        "test/dune": "(test (name t) (libraries mylib))\n",
        "test/t.ml": "let () = assert (Mylib.A.x = 1)\n",
        "bench/dune": bench,
        "bench/b.ml": "let () = ignore (Mylib.A.x)\n",
    }
    if package_bench:
        files["mylib-bench.opam"] = ""
    if fuzz:
        files["fuzz/dune"] = "(executable (name f) (libraries crowbar mylib))\n"
        files["fuzz/f.ml"] = "let () = ignore Mylib.A.x\n"
    return files


def bench_repo(root: Path, package_bench: bool = False) -> Path:
    return git_repo(
        root,
        [
            ("initial", bench_project(package_bench)),
            ("add y", {"lib/a.ml": "let x = 1\nlet y = x + 1\n"}),
            ("break y", {"lib/a.ml": 'let x = 1\nlet y = x + "1"\n'}),
        ],
    )
