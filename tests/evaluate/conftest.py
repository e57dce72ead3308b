"""Eval fixtures: a tiny real OCaml repository mined into a held-out dataset, and a model
server on loopback that answers with scripted outputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bactrian.dataset.splits import DatasetConfig, build_dataset
from bactrian.dataset.store import ExampleDB
from bactrian.mine.config import MineConfig
from bactrian.mine.mining import mine_vcs
from tests.mine.repos import ENV, sh
from tests.models.modelcache import use_model_cache

use_model_cache()

MONEY_ML = "type t = int\n\nlet of_int x = x\nlet add a b = a + b\n"
MONEY_MLI = "type t\n\nval of_int : int -> t\nval add : t -> t -> t\n"
TEST_ML = "let () = assert (Money.add (Money.of_int 1) (Money.of_int 2) = Money.of_int 3)\n"

# cheap real stages: the OCaml compiler type-checks the library, the test runs it
STAGES = {
    "parse": "ocamlc -stop-after parsing -c src/money.mli src/money.ml",
    "typecheck": "cd src && ocamlc -c money.mli money.ml",
    "build": "",
    "test": "cd src && ocamlc -c money.mli money.ml && cd .. && ocaml -I src src/money.cmo test/t.ml",
}


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    sh(root, "git", "init", "-q", "-b", "main")
    commits = [
        ("initial", {"src/money.ml": MONEY_ML, "src/money.mli": MONEY_MLI, "test/t.ml": TEST_ML}),
        (
            "add Money.to_string",
            {
                "src/money.ml": MONEY_ML + "let to_string t = string_of_int t\n",
                "src/money.mli": MONEY_MLI + "val to_string : t -> string\n",
            },
        ),
        (
            "add Money.sub",
            {
                "src/money.ml": MONEY_ML
                + "let to_string t = string_of_int t\nlet sub a b = a - b\n",
                "src/money.mli": MONEY_MLI + "val to_string : t -> string\nval sub : t -> t -> t\n",
            },
        ),
    ]
    for i, (msg, files) in enumerate(commits):
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        sh(root, "git", "add", "-A")
        date = f"{1_700_000_000 + 3600 * i} +0000"
        env = dict(ENV, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        subprocess.run(["git", "commit", "-q", "-m", msg], cwd=root, env=env, check=True)
    return root


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    with ExampleDB() as db:
        mine_vcs(repo, "HEAD~2..HEAD", MineConfig(), db=db)
        examples = db.all()
    assert len(examples) == 2, [e.kind for e in examples]
    out = tmp_path / "ds"
    build_dataset(out, examples, DatasetConfig(heldout_fraction=1.0, rl_fraction=0.0))
    return out


def write_config(tmp_path: Path, models: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ["[eval]"]
    lines += [
        f"stages = {{ {', '.join(f'{k} = {v!r}' for k, v in STAGES.items())} }}".replace("'", '"')
    ]
    lines += ["", "[ces]", "workers = 1", ""]
    for name, url in models.items():
        lines += [
            f"[models.{name}]",
            'backend = "openai"',
            f'base_url = "{url}"',
            f'model = "{name}"',
            "",
        ]
    cfg = tmp_path / "config.toml"
    cfg.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("BACTRIAN_CONFIG", str(cfg))
