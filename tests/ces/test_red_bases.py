"""Judging fixes needs red bases; checking human-written gold diffs needs their own test edits
to count; and a batch over more bases than ``max_bases`` must not evict a base it still uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from bactrian.ces.contract import BaseSpec, Job
from bactrian.ces.local import LocalBackend
from bactrian.errors import BaseNotGreenError

from .conftest import small_config
from .project import FILES, edit, udiff, write_project

BROKEN = FILES["lib/geom.ml"].replace("x * x", "x *. x")


def _red_project(root: Path) -> Path:
    project = write_project(root)
    (project / "lib/geom.ml").write_text(BROKEN)
    return project


def test_red_base_is_refused_by_default_and_judged_when_allowed(tmp_path: Path) -> None:
    project = _red_project(tmp_path / "red")
    fix = udiff("lib/geom.ml", BROKEN, FILES["lib/geom.ml"])
    backend = LocalBackend(small_config(tmp_path / "work", workers=1))
    try:
        with pytest.raises(BaseNotGreenError, match="typecheck"):
            backend.evaluate([Job(BaseSpec(str(project)), fix)])
        spec = BaseSpec(str(project), require_green=False)
        wrong = udiff("lib/geom.ml", BROKEN, BROKEN.replace("x *. x", "(x *. x"))
        good, bad, good_again = backend.evaluate([Job(spec, fix), Job(spec, wrong), Job(spec, fix)])
    finally:
        backend.close()
    assert good.ok and good.furthest == "test" and good.reward == 1.0
    assert not bad.ok and bad.furthest == "apply" and bad.stage("parse").status == "failed"
    assert good_again.ok  # the worker went back to its (red) base between jobs
    assert spec.key() != BaseSpec(str(project)).key()


def test_trust_policy_runs_the_diffs_own_tests(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p")
    new_case = edit(
        "test/test_shapes.ml",
        'Alcotest.test_case "per" `Quick t_per ]',
        'Alcotest.test_case "per" `Quick t_per;\n'
        '                   Alcotest.test_case "fails" `Quick (fun () -> Alcotest.fail "no") ]',
    )
    verdicts = {}
    for policy in ("fail", "trust"):
        backend = LocalBackend(
            small_config(tmp_path / f"work-{policy}", workers=1, edits_tests_policy=policy)
        )
        try:
            verdicts[policy] = backend.evaluate([Job(BaseSpec(str(project)), new_case)])[0]
        finally:
            backend.close()
    assert "edits-tests" in verdicts["fail"].flags and "edits-tests" in verdicts["trust"].flags
    assert "cannot pass" in verdicts["fail"].stage("test").output
    # under "trust" the new (failing) test really ran
    trust_test = verdicts["trust"].stage("test")
    assert trust_test.status == "failed" and "fails" in trust_test.output


def test_a_batch_wider_than_max_bases_keeps_its_bases(tmp_path: Path) -> None:
    projects = []
    for i in range(3):
        p = write_project(tmp_path / f"p{i}")
        (p / "lib/geom.ml").write_text(FILES["lib/geom.ml"] + f"let tag = {i}\n")
        projects.append(p)
    backend = LocalBackend(small_config(tmp_path / "work", workers=1, max_bases=1))
    try:
        diff = edit("lib/geom.ml", "2 * x", "x + x")
        verdicts = backend.evaluate([Job(BaseSpec(str(p)), diff) for p in projects])
        assert [v.ok for v in verdicts] == [True, True, True]
        assert len(backend.status()["bases"]) == 1  # bound restored after the batch
    finally:
        backend.close()
