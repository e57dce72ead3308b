"""The sandboxes on their own: isolation, limits, timeouts, output caps (real bwrap)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from bactrian.ces.config import Limits
from bactrian.ces.sandbox import NoSandbox, RunResult, get_sandbox, prepare_tree, sandbox_uid
from bactrian.errors import UnknownNameError

from .conftest import sandbox_processes

LIMITS = Limits(cpu_s=20, wall_s=20, memory_mb=512, max_procs=32, output_bytes=4096, max_file_mb=8)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    t = tmp_path / "tree"
    t.mkdir()
    (t / "hello.txt").write_text("hi\n")
    prepare_tree(t, sandbox_uid(str(t)))
    return t


def run(tree: Path, cmd: str, **kw: object) -> RunResult:
    limits = Limits(**{**LIMITS.__dict__, **kw})  # type: ignore[arg-type]
    return get_sandbox("bwrap").run(cmd, tree=tree, limits=limits, uid=sandbox_uid(str(tree)))


def test_tree_is_writable_and_the_rest_is_not(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    r = run(
        tree,
        "cat hello.txt && echo new > made.txt && "
        f"(echo x > {outside} || echo cannot-outside) && (echo x > /etc/evil || echo cannot-etc) && "
        "(echo x > /usr/evil || echo cannot-usr) && echo tmp > /tmp/t && cat /tmp/t && pwd",
    )
    assert r.exit_code == 0, r.output
    out = r.output
    for word in ("hi", "cannot-outside", "cannot-etc", "cannot-usr", "tmp", "/ces/tree"):
        assert word in out
    assert (tree / "made.txt").read_text() == "new\n"
    assert not outside.exists()
    assert not Path("/etc/evil").exists()


def test_no_network(tree: Path) -> None:
    r = run(tree, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '")
    # only the loopback device exists in the sandbox's network namespace
    assert r.output.split() == ["lo"], r.output


def test_timeout_kills_the_whole_group(tree: Path) -> None:
    # how fast the kill is: benchmarks/bench_timeouts.py
    r = run(tree, "sleep 300 & sleep 300 & (sh -c 'sleep 300') & wait", wall_s=1.0)
    assert r.timed_out and r.killed and r.exit_code is None
    assert "sandbox-kill" in r.flags and "timeout" in r.flags
    uid = sandbox_uid(str(tree))
    for _ in range(50):
        if not sandbox_processes({uid}):
            break
        time.sleep(0.1)
    assert not sandbox_processes({uid})


@pytest.mark.needs_root  # the per-uid process limit path runs as root
def test_fork_bomb_is_contained(tree: Path) -> None:
    assert run(tree, "grep processes /proc/self/limits").output.split()[2] == str(LIMITS.max_procs)
    r = run(tree, "f(){ f|f& }; f 2>/dev/null; sleep 2; echo survived", wall_s=8)
    assert "survived" in r.output or r.killed
    uid = sandbox_uid(str(tree))
    for _ in range(50):
        if not sandbox_processes({uid}):
            break
        time.sleep(0.1)
    assert not sandbox_processes({uid})


def test_memory_and_file_size_limits(tree: Path) -> None:
    r = run(tree, "head -c 100000000 /dev/zero > big; echo rc=$?; ls -l big")
    assert (tree / "big").stat().st_size <= LIMITS.max_file_mb * 1024 * 1024
    assert "rc=0" not in r.output
    r = run(tree, "python3 -c 'x = bytearray(2 * 1024 ** 3)' 2>&1 || echo failed-alloc")
    assert "failed-alloc" in r.output or "MemoryError" in r.output


def test_output_is_capped_and_a_flood_killed(tree: Path) -> None:
    r = run(tree, "head -c 20000 /dev/zero | tr '\\0' a; echo; echo END")
    assert r.truncated and "output-truncated" in r.flags
    assert len(r.output) < 4096 + 200 and r.output.rstrip().endswith("END")
    r = run(tree, "yes")
    assert r.killed and "sandbox-kill" in r.flags


def test_ocaml_toolchain_works_inside(tree: Path) -> None:
    r = run(tree, "ocamlfind list 2>/dev/null | grep -c alcotest; dune --version")
    assert r.exit_code == 0 and r.output.split()[0] != "0", r.output


def test_none_sandbox_warns_loudly(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    NoSandbox._warned = False
    with caplog.at_level(logging.WARNING):
        r = get_sandbox("none").run("echo ok", tree=tree, limits=LIMITS)
    assert r.output.strip() == "ok"
    assert any("WITHOUT isolation" in rec.message for rec in caplog.records)


def test_unknown_sandbox_name() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: bwrap"):
        get_sandbox("bwarp")


def test_many_files_hit_the_disk_watchdog(tree: Path) -> None:
    # each file is under RLIMIT_FSIZE (8 MB); together they pass the 40 MB disk budget
    r = run(
        tree,
        "i=0; while [ $i -lt 40 ]; do head -c 7000000 /dev/zero > f$i; i=$((i+1)); done; sleep 5",
        max_disk_mb=40,
    )
    assert r.killed and "disk-limit" in r.flags and "sandbox-kill" in r.flags
    assert sum(p.stat().st_size for p in tree.glob("f*")) < 40 * 7000000


def test_daemons_do_not_outlive_the_stage(tree: Path) -> None:
    r = run(tree, "setsid sh -c 'sleep 300' > /dev/null 2>&1 < /dev/null & echo started")
    assert r.exit_code == 0 and "started" in r.output
    uid = sandbox_uid(str(tree))
    for _ in range(50):
        if not sandbox_processes({uid}):
            break
        time.sleep(0.1)
    assert not sandbox_processes({uid})


def test_a_sandbox_that_cannot_start_is_a_sandbox_error(tmp_path: Path) -> None:
    from bactrian.ces.sandbox import BwrapSandbox
    from bactrian.errors import SandboxError

    with pytest.raises(SandboxError, match="bubblewrap cannot run commands here"):
        BwrapSandbox().check(tmp_path / "missing-tree")
    BwrapSandbox().check(tmp_path)  # a real tree passes
