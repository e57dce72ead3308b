"""typecheck + build in one dune run (``[ces] fuse_stages``) gives exactly the verdicts of the
stages run one by one, on real dune and bubblewrap."""

from __future__ import annotations

from pathlib import Path

from bactrian.ces.contract import BaseSpec, Job
from bactrian.ces.local import LocalBackend

from .conftest import small_config
from .project import write_project
from .test_verdicts import FAILING_TEST, GREEN, LINK, PARSE, TYPE


def test_fused_and_staged_verdicts_are_the_same(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    base = BaseSpec(str(project))
    diffs = [GREEN, TYPE, PARSE, LINK, FAILING_TEST, GREEN]
    got = {}
    for fuse in (True, False):
        backend = LocalBackend(small_config(tmp_path / f"work-{fuse}", workers=1, fuse_stages=fuse))
        try:
            got[fuse] = backend.evaluate([Job(base, d) for d in diffs])
        finally:
            backend.close()
    fused, staged = got[True], got[False]
    assert [v.fingerprint() for v in fused] == [v.fingerprint() for v in staged]
    assert [v.furthest for v in fused] == ["test", "parse", "apply", "typecheck", "build", "test"]
    # a green job ran typecheck and build as one dune command; the staged one as two
    for v in (fused[0], fused[-1], fused[4]):
        tc, build = v.stage("typecheck"), v.stage("build")
        assert tc is not None and build is not None
        assert tc.command == build.command and "@check @@default" in (build.command or "")
        assert tc.duration_s == 0.0 and tc.status == "passed"
    tc, build = staged[0].stage("typecheck"), staged[0].stage("build")
    assert tc is not None and build is not None and tc.command != build.command
    # a failing build fell back to the stages one by one: its output is the staged one
    link_fused, link_staged = fused[3].stage("build"), staged[3].stage("build")
    assert link_fused is not None and link_staged is not None
    assert link_fused.status == link_staged.status == "failed"
    assert link_fused.command == link_staged.command and "@check" not in (link_fused.command or "")
