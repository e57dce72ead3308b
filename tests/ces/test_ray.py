"""The Ray backend passes the same verdict tests as the local pool, on a local Ray: one Ray
session for the module (2 CPUs), one warm base with 2 actors."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bactrian.ces.config import CESConfig
from bactrian.ces.types import BACKENDS, BaseSpec, Job

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

PROJECT = {
    "dune-project": "(lang dune 2.9)\n",
    "src/dune": "(library\n (name calc))\n",
    "src/calc.mli": "val add : int -> int -> int\nval mul : int -> int -> int\n",
    "src/calc.ml": "let add a b = a + b\n\nlet mul a b = a * b\n",
    "test/dune": "(test\n (name test_calc)\n (libraries calc alcotest))\n",
    "test/test_calc.ml": (
        'let test_add () = Alcotest.(check int) "add" 5 (Calc.add 2 3)\n\n'
        'let test_mul () = Alcotest.(check int) "mul" 6 (Calc.mul 2 3)\n\n'
        "let () =\n"
        '  Alcotest.run "calc"\n'
        '    [ ("calc", [ Alcotest.test_case "add" `Quick test_add;\n'
        '                 Alcotest.test_case "mul" `Quick test_mul ]) ]\n'
    ),
}


def udiff(changes: dict[str, str]) -> str:
    """A git-style diff that changes each ``path`` of :data:`PROJECT` to the given text."""
    out = []
    for rel, new in changes.items():
        old = PROJECT[rel]
        out.append(f"diff --git a/{rel} b/{rel}\n")
        out.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"a/{rel}",
                f"b/{rel}",
            )
        )
    return "".join(out)


ML, MLI = PROJECT["src/calc.ml"], PROJECT["src/calc.mli"]
GREEN = udiff(
    {
        "src/calc.ml": ML + "\nlet sub a b = a - b\n",
        "src/calc.mli": MLI + "val sub : int -> int -> int\n",
    }
)
PARSE_ERROR = udiff({"src/calc.ml": ML.replace("a + b", "a +")})
TYPE_ERROR = udiff({"src/calc.ml": ML.replace("a + b", 'a + b + "one"')})
FAILING_TEST = udiff({"src/calc.ml": ML.replace("a * b", "(a * b) + 1")})
NOT_APPLYING = (
    "diff --git a/src/calc.ml b/src/calc.ml\n--- a/src/calc.ml\n+++ b/src/calc.ml\n"
    "@@ -1,1 +1,1 @@\n-let nothing_like_this = 0\n+let x = 1\n"
)


def write_project(root: Path) -> Path:
    for rel, text in PROJECT.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(scope="module")
def ray_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from bactrian.ces.ray_backend import RayBackend

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=96 * 1024 * 1024)
    config = CESConfig(workers=2, work_dir=tmp_path_factory.mktemp("ces-ray-work"))
    backend = RayBackend(config)
    try:
        yield backend
    finally:
        backend.close()
        ray.shutdown()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseSpec:
    # `--force`: dune skips a test action whose inputs it has already seen pass, printing
    # nothing, when a diff recreates a state judged before (same diff twice).
    test = "dune runtest --root . --force 2>&1"
    return BaseSpec(str(write_project(tmp_path_factory.mktemp("calc"))), stages={"test": test})


def test_ray_is_a_registered_backend() -> None:
    import bactrian.ces.ray_backend  # noqa: F401  (registers on import)

    assert "ray" in BACKENDS


def test_warm_starts_two_actors_with_green_trees(ray_backend: Any, base: BaseSpec) -> None:
    info = ray_backend.warm(base, workers=2)
    assert info["workers"] == 2
    st = ray_backend.status()
    assert st["backend"] == "ray"
    assert st["bases"][0]["key"] == info["key"]
    assert st["workers"] == 2


def test_verdicts_match_the_local_backend_and_keep_order(ray_backend: Any, base: BaseSpec) -> None:
    diffs = [GREEN, PARSE_ERROR, TYPE_ERROR, FAILING_TEST, NOT_APPLYING, GREEN]
    verdicts = ray_backend.evaluate([Job(base=base, diff=d) for d in diffs])
    assert [v.furthest for v in verdicts] == ["test", "apply", "parse", "build", None, "test"]
    assert [v.ok for v in verdicts] == [True, False, False, False, False, True]
    green, parse, typed, failing = verdicts[:4]
    assert green.reward == 1.0 and parse.reward < typed.reward < failing.reward < 1.0
    assert any(d.kind == "syntax" for d in parse.diagnostics), parse.diagnostics
    assert any("string" in d.message for d in typed.diagnostics), typed.diagnostics
    assert failing.stage("test").status == "failed"  # type: ignore[union-attr]
    assert {v.worker for v in verdicts} <= set(ray_backend.status()["bases"][0]["worker_ids"])
    assert len({v.worker for v in verdicts}) == 2, "jobs should spread over both actors"
    assert all(v.error is None for v in verdicts)


def test_each_job_sees_the_base_not_the_previous_diff(ray_backend: Any, base: BaseSpec) -> None:
    # A type error then the same green diff twice on every actor: resets must hold.
    diffs = [TYPE_ERROR, GREEN, TYPE_ERROR, GREEN, GREEN, GREEN]
    verdicts = ray_backend.evaluate([Job(base=base, diff=d) for d in diffs])
    assert [v.furthest for v in verdicts] == ["parse", "test", "parse", "test", "test", "test"]
    assert ray_backend.status()["counters"]["actor_failures"] == 0
