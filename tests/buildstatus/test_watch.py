"""The watch-mode probe against a real ``dune build -w`` run by ``bactrian build watch``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bactrian.buildstatus.probe import choose_probe
from bactrian.buildstatus.watch import (
    WatchProbe,
    WatchStatus,
    WatchTracker,
    _watch_lock,
    foreign_dune_watch,
    read_status,
    status_path,
    watcher_alive,
)
from bactrian.errors import BuildProbeError
from bactrian.types import BuildState

from .projects import LEDGER_ML, write_project

DATA = Path(__file__).parent / "data"


def _tracker_over(data: bytes, chunk: int) -> list[tuple[int, str, int]]:
    status = WatchStatus("/ws", ["dune", "build", "-w"], 1)
    tracker = WatchTracker(status)
    seen = []
    text = data.decode()
    for i in range(0, len(text), chunk):
        if tracker.feed(text[i : i + chunk]):
            seen.append((status.build_no, status.state, len(status.diagnostics)))
    return seen


@pytest.mark.parametrize("chunk", [1, 7, 64, 100_000])
def test_tracker_on_captured_dune_29_terminal_output(chunk: int) -> None:
    """A real capture of dune 2.9.3 -w on a pty: green, an edit that breaks the interface, the
    fix. dune redraws the previous status line right after each NEW BUILD banner; that redraw
    must not end the new build."""
    data = (DATA / "dune_2.9_watch_tty.bin").read_bytes()
    seen = _tracker_over(data, chunk)
    every = [
        (1, "green", 0),
        (2, "building", 0),
        (2, "red", 1),
        (3, "building", 1),  # the last finished build's diagnostics stay until the next ends
        (3, "green", 0),
    ]
    if chunk <= 64:
        assert seen == every
    else:  # one feed: only the final state is reported
        assert seen == every[-1:]


def test_tracker_keeps_the_errors_of_the_last_build() -> None:
    data = (DATA / "dune_2.9_watch_tty.bin").read_bytes().decode()
    status = WatchStatus("/ws", ["dune"], 1)
    tracker = WatchTracker(status)
    cut = data.index("Had errors") + 60
    tracker.feed(data[:cut])
    assert status.state == "red"
    (d,) = status.diagnostics
    assert d["file"] == "lib/ledger.ml" and "does not match the interface" in d["message"]
    assert "Done:" not in status.output and "\x1b" not in status.output


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    ws = write_project(tmp_path / "ws", {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "bactrian.buildstatus.cli", "watch", "-C", str(ws)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not (watcher_alive(ws) and read_status(ws)) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.05)
        yield ws, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _await_state(ws: Path, state: str, build_no: int = 0, timeout: float = 60) -> WatchStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = read_status(ws)
        if s and s.state == state and s.build_no > build_no:
            return s
        time.sleep(0.05)
    raise AssertionError(f"watch status never became {state}: {read_status(ws)}")


def _edit(ws: Path, rel: str, text: str, timeout: float = 10) -> None:
    """Write ``rel`` so that its mtime is past the last build's start stamp (what the watch
    probe compares): rewrite it until the file system clock has ticked past that stamp."""
    status = read_status(ws)
    started = status.build_started_at if status else 0.0
    path = ws / rel
    deadline = time.monotonic() + timeout
    while True:
        path.write_text(text)
        if path.stat().st_mtime > started:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}'s mtime never passed the build start {started}")
        time.sleep(0.01)


def test_watch_probe_follows_a_real_dune_watch(watched) -> None:
    ws, proc = watched
    probe = WatchProbe(wait_s=60, stale_s=60)
    first = probe.run(ws)
    assert first.state is BuildState.GREEN, (first.log, read_status(ws))
    assert first.probe == "dune-watch" and "dune build -w" in first.command
    assert watcher_alive(ws)
    auto = choose_probe(ws)
    auto_green = auto.run(ws, "t1")  # auto defers to the live watcher: no second dune build
    assert auto_green.state is BuildState.GREEN and auto_green.probe == "dune-watch"
    n = read_status(ws).build_no  # type: ignore[union-attr]

    _edit(ws, "lib/ledger.ml", "let add x y = x ^ y\nlet total _ = 0\n")
    red = probe.run(ws)
    assert red.state is BuildState.RED, (red.log, read_status(ws))
    (d,) = red.diagnostics
    assert d.file == "lib/ledger.ml" and "does not match the interface" in d.message
    assert read_status(ws).build_no > n  # type: ignore[union-attr]

    _edit(ws, "lib/ledger.ml", LEDGER_ML)
    assert probe.run(ws).state is BuildState.GREEN

    # no build output of ours inside the workspace, only dune's _build
    assert sorted(p.name for p in ws.iterdir()) == ["_build", "dune-project", "lib"]

    child = read_status(ws).child_pid  # type: ignore[union-attr]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) is not None
    assert not watcher_alive(ws)
    assert read_status(ws).state == "exited"  # type: ignore[union-attr]
    gone = probe.run(ws)
    assert gone.state is BuildState.UNKNOWN and "bactrian build watch" in gone.log
    assert child and not Path(f"/proc/{child}").exists() or _zombie(child)
    after = auto.run(ws, "t1")  # watcher gone: the same probe now runs dune itself
    assert after.state is BuildState.GREEN and after.probe == "dune"


def _zombie(pid: int | None) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_second_watcher_on_one_workspace_refuses(watched) -> None:
    ws, _ = watched
    _await_state(ws, "green")
    second = subprocess.run(
        [sys.executable, "-m", "bactrian.buildstatus.cli", "watch", "-C", str(ws)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode != 0
    assert "already running" in second.stderr + second.stdout


def test_no_watcher_is_unknown(tmp_path: Path) -> None:
    res = WatchProbe(wait_s=0, stale_s=0).run(tmp_path)
    assert res.state is BuildState.UNKNOWN
    assert "no watch-mode build is running" in res.log


def _publish(ws: Path, **fields: object) -> WatchStatus:
    s = WatchStatus(str(ws), ["dune", "build", "-w"], os.getpid(), **fields)  # type: ignore[arg-type]
    status_path(ws).parent.mkdir(parents=True, exist_ok=True)
    status_path(ws).write_text(s.to_json())
    return s


def test_build_in_progress_is_unknown(tmp_path: Path) -> None:
    with _watch_lock(tmp_path):
        _publish(tmp_path, state="building", build_no=2, build_started_at=time.time())
        res = WatchProbe(wait_s=0.2, stale_s=0).run(tmp_path)
        assert res.state is BuildState.UNKNOWN and "still running" in res.log
        with pytest.raises(BuildProbeError, match="already running"), _watch_lock(tmp_path):
            pass


def test_edit_newer_than_the_last_build_is_unknown_until_rebuilt(tmp_path: Path) -> None:
    (tmp_path / "a.ml").write_text("let x = 1\n")
    started = time.time() + 5  # "the build started after every file was written"
    with _watch_lock(tmp_path):
        _publish(tmp_path, state="red", build_no=1, build_started_at=started)
        res = WatchProbe(wait_s=0, stale_s=0).run(tmp_path)
        assert res.state is BuildState.RED
        later = started + 5
        os.utime(tmp_path / "a.ml", (later, later))
        res = WatchProbe(wait_s=0, stale_s=0.1).run(tmp_path)
        assert res.state is BuildState.UNKNOWN and "changed after" in res.log
        # files under _build and dot-dirs do not count
        os.utime(tmp_path / "a.ml", (started - 1, started - 1))
        (tmp_path / "_build").mkdir()
        (tmp_path / "_build" / "log").write_text("x")
        os.utime(tmp_path / "_build" / "log", (later, later))
        assert WatchProbe(wait_s=0, stale_s=0).run(tmp_path).state is BuildState.RED


def test_kill_9_of_the_wrapper_stops_dune_and_reads_as_no_watcher(watched) -> None:
    ws, proc = watched
    status = _await_state(ws, "green")
    assert status.child_pid
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    # the pty closes with the wrapper: the kernel hangs up dune's session
    deadline = time.monotonic() + 20
    while not _zombie(status.child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _zombie(status.child_pid), "dune outlived its wrapper"
    assert not watcher_alive(ws)
    res = WatchProbe(wait_s=0, stale_s=0).run(ws)
    assert res.state is BuildState.UNKNOWN and "no watch-mode build is running" in res.log


def test_foreign_dune_watch_is_found_in_proc(tmp_path: Path) -> None:
    proc_root = tmp_path / "proc"
    ws = tmp_path / "ws"
    ws.mkdir()
    for pid, argv, cwd in [
        ("10", b"dune\0build\0--root\0.\0", ws),  # not watching
        ("11", b"/usr/bin/dune\0build\0-w\0@check\0", tmp_path),  # another root
        ("12", b"vim\0-w\0build\0", ws),  # not dune
        ("13", b"/usr/bin/dune\0build\0--watch\0", ws),
    ]:
        (proc_root / pid).mkdir(parents=True)
        (proc_root / pid / "cmdline").write_bytes(argv)
        (proc_root / pid / "cwd").symlink_to(cwd)
    (proc_root / "self").mkdir()
    assert foreign_dune_watch(ws, proc_root) == 13
    (proc_root / "13" / "cmdline").write_bytes(b"dune\0build\0")
    assert foreign_dune_watch(ws, proc_root) is None


def test_dune_probe_will_not_fight_a_plain_dune_watch(tmp_path: Path) -> None:
    ws = write_project(tmp_path / "ws", {})
    probe = choose_probe(ws)
    assert probe.run(ws, "t0").state is BuildState.GREEN
    dune = subprocess.Popen(
        ["dune", "build", "-w", "@check", "--root", "."],
        cwd=ws,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while foreign_dune_watch(ws) != dune.pid and time.monotonic() < deadline:
            time.sleep(0.05)
        assert probe.run(ws, "t0").state is BuildState.GREEN  # cached: no build needed
        res = probe.run(ws, "t1")
        assert res.state is BuildState.UNKNOWN
        assert f"(pid {dune.pid}) is already building" in res.log
        assert "bactrian build watch" in res.log
    finally:
        os.killpg(dune.pid, signal.SIGTERM)
        dune.wait(timeout=20)
    assert probe.run(ws, "t1").state is BuildState.GREEN


@pytest.mark.parametrize(
    "command",
    [
        ["dune", "build", "-w", "--display", "short"],
        ["dune", "build", "-w", "--display=quiet"],
    ],
)
def test_watch_refuses_display_modes_without_the_end_of_build_line(
    tmp_path: Path, command: list[str]
) -> None:
    """Checked on dune 2.9.3: with --display short or quiet, watch mode never prints
    "Success, waiting for filesystem changes" even on a terminal."""
    from bactrian.buildstatus.watch import run_watch

    with pytest.raises(BuildProbeError, match="drop the --display option"):
        run_watch(tmp_path, command)
    assert not watcher_alive(tmp_path)
