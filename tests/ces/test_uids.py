"""Sandbox uids are leased machine-wide: no two live workers share one, even where the uids
derived from their directories collide (the old CRC scheme), across pools and processes."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bactrian.ces import tree
from bactrian.ces.contract import BaseSpec, Job
from bactrian.ces.local import LocalBackend
from bactrian.ces.uids import lease_uid, preferred_uid

from .conftest import needs_root, small_config
from .project import write_project
from .test_verdicts import GREEN

HOLDER = """
import sys
from pathlib import Path
from bactrian.ces.uids import lease_uid
lease = lease_uid(sys.argv[1], registry=Path(sys.argv[2]))
print(lease.uid, flush=True)
sys.stdin.readline()
"""


def test_one_key_twice_gets_two_uids_and_a_released_uid_is_free_again(tmp_path: Path) -> None:
    a = lease_uid("same", registry=tmp_path)
    b = lease_uid("same", registry=tmp_path)
    assert a.uid == preferred_uid("same") and b.uid != a.uid
    a.release()
    c = lease_uid("same", registry=tmp_path)
    assert c.uid == preferred_uid("same")
    # a uid asked for by number (a reused tree's) when it is free, another one when held
    assert lease_uid("other", prefer=b.uid, registry=tmp_path).uid != b.uid
    b.release()
    assert lease_uid("other", prefer=b.uid, registry=tmp_path).uid == b.uid


def test_a_uid_held_by_another_process_is_not_leased_until_it_exits(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "k", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None
        held = int(holder.stdout.readline())
        assert held == preferred_uid("k")
        mine = lease_uid("k", registry=tmp_path)
        assert mine.uid != held
    finally:
        holder.kill()  # killed, not closed: the kernel drops its lock all the same
        holder.wait()
    assert lease_uid("k", registry=tmp_path).uid == held


def _colliding_work_dirs(root: Path, key: str) -> tuple[Path, Path]:
    """Two work directories whose first workers' directories give the same derived uid."""
    first = root / "work-a"
    want = preferred_uid(str(first / "bases" / key / "w0"))
    for i in range(200_000):
        other = root / f"work-b{i}"
        if preferred_uid(str(other / "bases" / key / "w0")) == want:
            return first, other
    raise AssertionError("no colliding directory found")


@needs_root
def test_two_pools_in_parallel_get_disjoint_uids(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    base = BaseSpec(str(project))
    key = tree.resolve(base).key()
    dirs = _colliding_work_dirs(tmp_path, key)
    registry = tmp_path / "uids"
    pools = [LocalBackend(small_config(d, workers=1, uid_dir=registry)) for d in dirs]
    try:
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda be: be.warm(base, 1), pools))
            verdicts = list(ex.map(lambda be: be.evaluate([Job(base, GREEN)])[0], pools))
        assert all(v.ok for v in verdicts), [v.to_dict() for v in verdicts]
        workers = [w for be in pools for p in be._pools.values() for w in p.workers]
        assert len(workers) == 2
        uids = [w.uid for w in workers]
        assert len(set(uids)) == 2, uids  # the derived uids collide; the leased ones do not
        for w in workers:  # each warm tree belongs to its own worker's uid
            assert (w.tree / "lib" / "geom.ml").stat().st_uid == w.uid
    finally:
        for be in pools:
            be.close()
    # closed pools hand their uids back
    assert {lease_uid("x", prefer=u, registry=registry).uid for u in uids} == set(uids)
