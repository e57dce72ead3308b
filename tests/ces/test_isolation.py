"""Isolation a job cannot outlive, and faults that are not the diff's (real dune, real bwrap,
real overlayfs, real memory cgroups, as root).

Each attack runs on a one-worker pool, so the job after it lands on the same worker."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bactrian.ces.apply_stage import apply_diff
from bactrian.ces.config import Limits
from bactrian.ces.contract import BaseSpec, Job, Verdict
from bactrian.ces.isolation import memory_cgroup_parent, overlay_unavailable
from bactrian.ces.local import LocalBackend
from bactrian.ces.sandbox import JobBounds, get_sandbox, prepare_tree, sandbox_uid
from bactrian.ces.worker import Worker
from bactrian.errors import SandboxError

from .conftest import small_config
from .project import edit, new_file, write_project

GREEN = edit("lib/geom.ml", "let double x = 2 * x", "let double x = x + x")
BROKEN = edit("lib/shapes.ml", "| Rect (w, h) -> w * h", "| Rect (w, h) -> w + h")


def rule(action: str, *deps: str) -> str:
    """A diff adding ``evil/dune``: a rule whose target ``dune build`` builds, so ``action``
    runs in the ``build`` stage, as the sandboxed job, in ``_build/default/evil``."""
    dep_field = f" (deps {' '.join(deps)})" if deps else ""
    stanza = (
        f'(rule (targets evil.out){dep_field} (action (system "( {action} ) && echo done-evil '
        '&& touch evil.out")))\n'
    )
    return new_file("evil/dune", stanza)


def ran(v: Verdict) -> bool:
    """The diff's rule ran to its end in the build stage."""
    build = v.stage("build")
    return build is not None and "done-evil" in build.output


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes | str]]:
    """Owner, group, mode and content (or link target) of everything under ``root``."""
    out: dict[str, tuple[int, int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [".", *dirnames, *filenames]:
            p = Path(dirpath) / n
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                body: bytes | str = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                body = p.read_bytes()
            else:
                body = ""
            out[str(p.relative_to(root))] = (st.st_uid, st.st_gid, st.st_mode, body)
    return out


def mounts_under(path: Path) -> list[str]:
    """Mount points under ``path`` in this process's mount namespace."""
    rows = Path("/proc/self/mountinfo").read_text().splitlines()
    return [r.split()[4] for r in rows if r.split()[4].startswith(str(path))]


def job_cgroups() -> list[str]:
    found = memory_cgroup_parent()
    assert found is not None, "no memory cgroup controller: the total memory cap cannot hold"
    return [p.name for p in found[1].glob(f"bactrian-ces-{os.getpid()}-*")]


def big_files(root: Path, over: int = 50 * 1024 * 1024) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(p).st_size > over:
                    out.append(str(p))
    return out


class One:
    """A one-worker pool on the tiny dune project."""

    def __init__(self, root: Path, **config: object) -> None:
        self.project = write_project(root / "project")
        self.work = root / "work"
        self.backend = LocalBackend(small_config(self.work, workers=1, **config))
        self.base = BaseSpec(str(self.project))
        self.backend.warm(self.base, 1)

    @property
    def worker(self) -> Worker:
        [pool] = self.backend._pools.values()
        return pool.workers[0]

    def judge(self, *diffs: str) -> list[Verdict]:
        return self.backend.evaluate([Job(self.base, d) for d in diffs])

    def clean(self) -> None:
        """No mount, no cgroup, no job directory is left behind; the warm tree is the base."""
        assert mounts_under(self.work) == []
        assert job_cgroups() == []
        assert not (self.worker.root / "jobs").exists()
        assert self.worker.verify()


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[One]:
    pool = One(tmp_path_factory.mktemp("ces-iso"))
    yield pool
    pool.backend.close()


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A root-owned host directory a job must never change."""
    d = tmp_path / "canary"
    (d / "d").mkdir(parents=True)
    (d / "f").write_text("secret\n")
    (d / "d" / "g").write_text("more\n")
    for p in (d, d / "d"):
        p.chmod(0o700)
    (d / "f").chmod(0o600)
    return d


# ---------------------------------------------------------------------------- what holds here


def test_untrusted_code_is_judged_only_on_the_overlay_isolation(tmp_path: Path) -> None:
    # this machine runs the CES as root with overlayfs: the overlay isolation is what holds
    assert os.geteuid() == 0 and overlay_unavailable() is None
    spec = BaseSpec(str(write_project(tmp_path / "p")), stages={"typecheck": "true"})
    w = Worker("w", spec, tmp_path / "w", small_config(tmp_path / "work"))
    assert w.isolation == "overlay"
    # and without it, untrusted code is refused with a clear message, never judged
    bare = Worker("r", spec, tmp_path / "r", small_config(tmp_path / "work", isolation="reset"))
    with pytest.raises(SandboxError, match="Refusing to judge untrusted code without a throw-away"):
        bare.warm()
    assert not (tmp_path / "r").exists()


def test_refused_paths_are_never_reported_as_touched(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    for path in ("_build/esc/f", ".git/config", "_opam/lib/x"):
        applied = apply_diff(tree, new_file(path, "x\n"))
        assert not applied.ok and "refused" in applied.message
        assert applied.touched == [], path


# ---------------------------------------------------------------------------- host tampering


def test_two_diff_chown_attack_leaves_the_host_directory_alone(one: One, canary: Path) -> None:
    before = snapshot(canary)
    plant = rule(f"ln -sfn {canary} ../../esc")  # _build/esc -> the canary directory
    through = new_file("_build/esc/f", "x\n") + new_file("_build/esc/d", "x\n")
    v_plant, v_through, v_next = one.judge(plant, through, GREEN)
    assert ran(v_plant), v_plant.to_dict()
    assert v_through.furthest is None and v_through.stage("apply").status == "failed"  # type: ignore[union-attr]
    assert snapshot(canary) == before
    assert not os.path.lexists(one.worker.tree / "_build" / "esc")
    assert v_next.ok, v_next.to_dict()
    one.clean()


def test_root_level_links_do_not_survive_the_job(one: One, canary: Path) -> None:
    plant = rule(
        f"ln -s {canary} ../../../_opam && ln -s {canary} ../../../.git && "
        f"ln -s {canary} ../../../.jj && ln -s {canary} ../../../lib/host"
    )
    v_plant, v_next = one.judge(plant, GREEN)
    assert ran(v_plant), v_plant.to_dict()
    for name in ("_opam", ".git", ".jj", "lib/host"):
        assert not os.path.lexists(one.worker.tree / name), name
    assert v_next.ok, v_next.to_dict()
    one.clean()


# ---------------------------------------------------------------------------- _build poisoning

FAKE_MAIN = 'let () = print_string "Test Successful in 0.001s. 3 tests run.\\n"\n'
POISON = """set -e
O=../test/.test_shapes.eobjs/native/dune__exe__Test_shapes.o
mkdir -p /tmp/fk && cp fake.ml /tmp/fk/
(cd /tmp/fk && ocamlopt -c -o dune__exe__Test_shapes.cmx fake.ml)
touch -r $O /tmp/fk/stamp
truncate -s $(stat -c %s $O) /tmp/fk/dune__exe__Test_shapes.o
chmod u+w $O && cat /tmp/fk/dune__exe__Test_shapes.o > $O && chmod a-w $O
touch -r /tmp/fk/stamp $O
"""


def test_a_swapped_test_main_does_not_make_a_later_broken_diff_pass(one: One) -> None:
    poison = (
        rule("sh poison.sh", "poison.sh", "fake.ml")
        + new_file("evil/poison.sh", POISON)
        + new_file("evil/fake.ml", FAKE_MAIN)
    )
    v_poison, v_broken = one.judge(poison, BROKEN)
    assert ran(v_poison), v_poison.to_dict()
    assert not v_broken.ok and v_broken.furthest == "build", v_broken.to_dict()
    assert v_broken.tests == {"passed": 2, "failed": 1, "total": 3}
    one.clean()


def test_chmod_000_on_a_build_dir_does_not_break_later_good_diffs(one: One) -> None:
    lock = rule("chmod 000 ../lib ../test")
    v_lock, v_good = one.judge(lock, GREEN)
    assert ran(v_lock), v_lock.to_dict()
    assert v_good.ok and v_good.reward == 1.0, v_good.to_dict()
    mode = (one.worker.tree / "_build" / "default" / "lib").stat().st_mode
    assert stat.S_IMODE(mode) != 0
    one.clean()


# ---------------------------------------------------------------------------- the job's own caps


def test_job_disk_cap_kills_at_the_cap_and_nothing_is_left(tmp_path: Path) -> None:
    pool = One(tmp_path, max_disk_mb=1024, max_file_mb=600, job_memory_mb=4096)
    try:
        fill = rule("for i in 1 2 3 4 5 6; do fallocate -l 500M ../../big$i || exit 1; done")
        v_fill, v_next = pool.judge(fill, GREEN)
        assert not v_fill.ok and "disk-limit" in v_fill.flags, v_fill.to_dict()
        assert v_fill.stage("build").status != "passed"  # type: ignore[union-attr]
        assert big_files(tmp_path) == []
        assert v_next.ok, v_next.to_dict()
        pool.clean()
    finally:
        pool.backend.close()


HOG = """import os, sys
n, size = 6, int(sys.argv[1])
r, w = os.pipe()
rr, rw = os.pipe()
kids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.close(rw)
        b = bytearray(size)
        for j in range(0, size, 4096):
            b[j] = 1
        os.write(w, b"x")
        os.close(w)
        os.read(rr, 1)
        os._exit(0)
    kids.append(pid)
os.close(w)
os.close(rr)
while os.read(r, 64):
    pass
os.close(rw)
alive = sum(1 for p in kids if os.waitpid(p, 0)[1] == 0)
print("survivors", alive, flush=True)
"""


def test_total_memory_cap_holds_over_many_processes(tmp_path: Path) -> None:
    limit_mb = 512
    size = 5 * limit_mb * 1024 * 1024 // 6  # six processes, five times the cap in all
    pool = One(tmp_path, job_memory_mb=limit_mb, memory_mb=2048)
    try:
        hog = rule(f"python3 hog.py {size}", "hog.py") + new_file("evil/hog.py", HOG)
        v_hog, v_next = pool.judge(hog, GREEN)
        out = v_hog.stage("build").output  # type: ignore[union-attr]
        assert "memory-limit" in v_hog.flags and not v_hog.ok, v_hog.to_dict()
        survivors = [int(line.split()[1]) for line in out.splitlines() if "survivors" in line]
        assert all(s * size <= limit_mb * 1024 * 1024 for s in survivors), out
        assert v_next.ok, v_next.to_dict()
        pool.clean()
    finally:
        pool.backend.close()


# ---------------------------------------------------------------------------- machine faults


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int, inodes: int) -> Iterator[Path]:
    """A file system of its own for the CES's data dir (the host's disk, in miniature)."""
    path.mkdir(parents=True)
    opts = f"size={size_mb}m,nr_inodes={inodes}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path) -> Path:
    """What another process does: take every block and every inode left on ``disk``."""
    hog = disk / "hog"
    hog.mkdir()
    with open(hog / "blocks", "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * (1 << 20))
            fh.flush()
    i = 0
    with contextlib.suppress(OSError):
        while True:
            (hog / f"i{i}").touch()
            i += 1
    return hog


def test_a_full_host_disk_is_an_error_retried_and_not_charged(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    with small_disk(tmp_path / "data", 256, 20000) as data:
        backend = LocalBackend(small_config(data / "work", workers=2))
        try:
            base = BaseSpec(str(project))
            backend.warm(base, 2)
            hog = fill(data)
            [v] = backend.evaluate([Job(base, GREEN)])
            assert v.state == "error" and v.reward is None and not v.ok, v.to_dict()
            assert "retried" in v.flags and v.error and "disk" in v.error
            counters = backend.status()["counters"]
            assert counters["retries"] == 1 and counters["errors"] == 1
            subprocess.run(["rm", "-rf", str(hog)], check=True)
            [again] = backend.evaluate([Job(base, GREEN)])
            assert again.state == "ok" and again.reward == 1.0, again.to_dict()
        finally:
            backend.close()


def test_a_broken_worker_is_retried_fresh_then_an_error_with_no_reward(tmp_path: Path) -> None:
    pool = One(tmp_path)
    try:
        w = pool.worker
        # the worker's warm tree vanishes (the machine's fault): retried on a fresh worker
        subprocess.run(["rm", "-rf", str(w.tree)], check=True)
        [v] = pool.judge(GREEN)
        assert v.ok and v.reward == 1.0 and "retried" in v.flags, v.to_dict()
        # and when no fresh worker can be had either, the verdict is an error: no reward
        [pool_info] = pool.backend._pools.values()
        for d in (w.tree, w.base_dir, pool_info.dir / "pristine"):
            subprocess.run(["rm", "-rf", str(d)], check=True)
        [v] = pool.judge(GREEN)
        assert v.state == "error" and v.reward is None and "retried" in v.flags, v.to_dict()
        assert v.to_dict()["state"] == "error" and v.to_dict()["reward"] is None
        assert Verdict.from_dict(v.to_dict()).reward is None
        counters = pool.backend.status()["counters"]
        assert counters["retries"] == 2 and counters["errors"] == 1
    finally:
        pool.backend.close()


# ---------------------------------------------------------------------------- read-only paths


def test_readonly_paths_cannot_be_written_and_a_planted_link_is_refused(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    (lower / "test").mkdir(parents=True)
    (lower / "test" / "t.ml").write_text("base\n")
    tree = tmp_path / "tree"
    (tree / "test").mkdir(parents=True)
    (tree / "test" / "t.ml").write_text("diff\n")
    uid = sandbox_uid(str(tree))
    prepare_tree(tree, uid)
    limits = Limits(wall_s=20)
    sb = get_sandbox("bwrap")
    bounds = JobBounds(readonly={"test": lower / "test"})
    r = sb.run(
        "cat test/t.ml; echo x > test/t.ml || echo cannot-write; rm -rf test || echo cannot-rm",
        tree=tree,
        limits=limits,
        uid=uid,
        bounds=bounds,
    )
    assert "base" in r.output and "cannot-write" in r.output and "cannot-rm" in r.output
    assert (lower / "test" / "t.ml").read_text() == "base\n"
    subprocess.run(["rm", "-rf", str(tree / "test")], check=True)
    (tree / "test").symlink_to(tmp_path)
    r = sb.run("true", tree=tree, limits=limits, uid=uid, bounds=bounds)
    assert r.exit_code != 0 and "planted-link" in r.flags
