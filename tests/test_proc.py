"""The one process runner (bactrian.proc), on real shell commands."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bactrian import proc
from bactrian.proc import HeadTail, ResourceLimits, bound_log


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, deadline_s: float = 10.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_output_and_exit_status(tmp_path: Path) -> None:
    res = proc.run(
        ["sh", "-c", "echo out; echo err >&2; exit 3"], cwd=tmp_path, timeout_s=30, keep_bytes=1000
    )
    assert res.returncode == 3 and not res.killed and not res.truncated
    assert res.text() == "out\nerr\n"


def test_head_and_tail_are_kept_and_the_middle_counted(tmp_path: Path) -> None:
    cmd = "echo HEAD; head -c 100000 /dev/zero | tr '\\0' x; echo; echo TAIL"
    res = proc.run(["sh", "-c", cmd], cwd=tmp_path, timeout_s=30, keep_bytes=1000)
    assert res.returncode == 0 and res.truncated
    assert res.total_bytes == 5 + 100000 + 1 + 5
    text = res.text(dropped="<{n} dropped>")
    assert text.startswith("HEAD\n") and text.endswith("TAIL\n")
    assert f"<{res.dropped_bytes} dropped>" in text and len(res.head) == len(res.tail) == 500


def test_headtail_keeps_exact_halves() -> None:
    ht = HeadTail(10)
    for chunk in (b"abc", b"defgh", b"ijklmnop"):
        ht.add(chunk)
    assert bytes(ht.head) == b"abcde" and bytes(ht.tail) == b"lmnop" and ht.total == 16
    assert bound_log("short", 10) == "short"
    assert "elided" in bound_log("x" * 100, 10)


def test_timeout_sends_term_then_kill_to_the_whole_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # the leader ignores TERM; a child in the same group sleeps: both must die
    cmd = f"trap '' TERM; sleep 300 & echo $$ $! > {pids}; wait"
    res = proc.run(["sh", "-c", cmd], cwd=tmp_path, timeout_s=1, keep_bytes=1000, grace_s=0.5)
    assert res.timed_out and res.killed == "timeout"
    assert res.returncode == -9  # TERM was ignored: KILL after the grace
    for pid in map(int, pids.read_text().split()):
        assert _wait_gone(pid), f"process {pid} of the group survived the kill"


def test_a_command_that_closes_its_output_is_waited_for_not_killed(tmp_path: Path) -> None:
    flag = tmp_path / "done"
    cmd = f"exec >/dev/null 2>&1; sleep 0.5; touch {flag}"
    res = proc.run(["sh", "-c", cmd], cwd=tmp_path, timeout_s=30, keep_bytes=1000)
    assert res.returncode == 0 and not res.killed and flag.exists()


def test_a_straggler_holding_the_pipe_is_noted_and_does_not_hang(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    cmd = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' & echo done"
    try:
        res = proc.run(["sh", "-c", cmd], cwd=tmp_path, timeout_s=60, keep_bytes=1000, linger_s=0.3)
        assert res.returncode == 0 and res.lingering and "done" in res.text()
    finally:
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), 9)


def test_output_flood_is_killed(tmp_path: Path) -> None:
    res = proc.run(
        ["sh", "-c", "yes"], cwd=tmp_path, timeout_s=60, keep_bytes=1000, hard_output_bytes=100_000
    )
    assert res.killed == "output" and not res.timed_out and res.total_bytes > 100_000


def test_watchdog_reason_kills(tmp_path: Path) -> None:
    calls = []

    def watchdog() -> str | None:
        calls.append(1)
        return "too-much" if len(calls) >= 2 else None

    res = proc.run(
        ["sleep", "300"],
        cwd=tmp_path,
        timeout_s=60,
        keep_bytes=1000,
        watchdog=watchdog,
        watch_every_s=0.05,
    )
    assert res.killed == "too-much" and len(calls) == 2


def test_resource_limits_apply_in_the_child(tmp_path: Path) -> None:
    res = proc.run(
        ["sh", "-c", "ulimit -f; ulimit -c"],
        cwd=tmp_path,
        timeout_s=30,
        keep_bytes=1000,
        limits=ResourceLimits(file_size=1024 * 1024, core=0),
    )
    # sh reports RLIMIT_FSIZE in 512-byte blocks (dash) or 1024-byte blocks (bash)
    fsize, core = res.text().split()
    assert int(fsize) in (1024, 2048) and core == "0"


def test_low_priority_runs_niced(tmp_path: Path) -> None:
    res = proc.run(
        ["sh", "-c", "nice"], cwd=tmp_path, timeout_s=30, keep_bytes=1000, low_priority=True
    )
    assert res.text().strip() == "19"
