"""Real git and Mercurial repositories with the same OCaml history, for the VCS miner tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENV = dict(
    os.environ,
    GIT_AUTHOR_NAME="Dev",
    GIT_AUTHOR_EMAIL="dev@example.com",
    GIT_COMMITTER_NAME="Dev",
    GIT_COMMITTER_EMAIL="dev@example.com",
    HGUSER="Dev <dev@example.com>",
    HGPLAIN="1",
)


def sh(cwd: Path, *cmd: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        cmd, cwd=cwd, env=env or ENV, check=True, capture_output=True, text=True
    ).stdout


MONEY_ML = "type t = int\n\nlet of_int x = x\nlet add a b = a + b\n"
MONEY_MLI = "type t\n\nval of_int : int -> t\nval add : t -> t -> t\n"


def _big_module(n: int) -> tuple[str, str, str]:
    ml = "".join(f"let f{i} x = x + {i}\n" for i in range(n))
    mli = "".join(f"val f{i} : int -> int\n" for i in range(n))
    test = "let () =\n" + "".join(f"  assert (Stats.f{i} 0 = {i});\n" for i in range(n)) + "  ()\n"
    return ml, mli, test


def history() -> list[tuple[str, dict[str, str | None]]]:
    """(message, {path: new content or None to delete}) per commit, oldest first."""
    stats_ml, stats_mli, stats_test = _big_module(30)
    return [
        ("initial", {"src/money.ml": MONEY_ML, "src/money.mli": MONEY_MLI, "README": "hi\n"}),
        (
            "add Money.to_string",
            {
                "src/money.ml": MONEY_ML + "let to_string t = string_of_int t\n",
                "src/money.mli": MONEY_MLI + "val to_string : t -> string\n",
            },
        ),
        ("reword readme", {"README": "hello\n"}),
        (
            "add the stats module and use it in report",
            {
                "src/stats.ml": stats_ml,
                "src/stats.mli": stats_mli,
                "test/test_stats.ml": stats_test,
                "src/report.ml": "let total xs = List.fold_left ( + ) 0 xs\n"
                + "".join(f"let r{i} = Stats.f{i} {i}\n" for i in range(30)),
                "src/report.mli": "val total : int list -> int\n"
                + "".join(f"val r{i} : int\n" for i in range(30)),
            },
        ),
        ("drop the readme", {"README": None}),
    ]


def make_git(root: Path, start_time: int = 1_700_000_000) -> Path:
    root.mkdir(parents=True)
    sh(root, "git", "init", "-q", "-b", "main")
    for i, (msg, files) in enumerate(history()):
        _write(root, files)
        sh(root, "git", "add", "-A")
        date = f"{start_time + 3600 * i} +0000"
        env = dict(ENV, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        sh(root, "git", "commit", "-q", "-m", msg, env=env)
    return root


def make_hg(root: Path, start_time: int = 1_700_000_000) -> Path:
    root.mkdir(parents=True)
    sh(root, "hg", "init")
    for i, (msg, files) in enumerate(history()):
        _write(root, files)
        sh(root, "hg", "commit", "-q", "-A", "-m", msg, "-d", f"{start_time + 3600 * i} 0")
    return root


def _write(root: Path, files: dict[str, str | None]) -> None:
    for path, text in files.items():
        target = root / path
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
