"""Build probes on real dune projects and real shell commands."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from bactrian.buildstatus import probe as probe_mod
from bactrian.buildstatus.probe import (
    BuildConfig,
    CommandProbe,
    DuneProbe,
    NoneProbe,
    bound_log,
    choose_probe,
    workspace_lock,
)
from bactrian.errors import ConfigError, UnknownNameError
from bactrian.types import BuildState

from .projects import write_project


def _listing(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] == "_build" or not p.is_file():
            continue
        out[str(rel)] = p.read_bytes()
    return out


def test_dune_probe_green_then_red(tmp_path: Path) -> None:
    ws = write_project(tmp_path / "ws", {})
    before = _listing(ws)
    probe = choose_probe(ws)
    assert isinstance(probe, DuneProbe) and probe.name == "dune"
    green = probe.run(ws, "tree-1")
    assert green.state is BuildState.GREEN, green.log
    assert green.exit_code == 0 and green.diagnostics == [] and green.probe == "dune"
    assert green.command.startswith("dune build @check --root .")
    assert _listing(ws) == before  # only dune's own _build was written
    assert sorted(p.name for p in ws.iterdir()) == ["_build", "dune-project", "lib"]

    (ws / "lib/ledger.ml").write_text("let add x y = x ^ y\nlet total _ = 0\n")
    red = probe.run(ws, "tree-2")
    assert red.state is BuildState.RED and red.exit_code == 1
    (d,) = red.diagnostics
    assert d.file == "lib/ledger.ml" and d.kind == "type"
    assert "does not match the interface" in d.message
    assert "Error:" in red.log


def test_dune_probe_runtest_targets_make_failing_tests_red(tmp_path: Path, monkeypatch) -> None:
    ws = write_project(
        tmp_path / "ws",
        {
            "test/dune": "(test (name t) (libraries ledger alcotest))\n",
            "test/t.ml": 'let () = Alcotest.run "l" [ ("s", [ Alcotest.test_case "add" `Quick '
            '(fun () -> Alcotest.(check int) "sum" 5 (Ledger.add 2 2)) ]) ]\n',
        },
    )
    assert choose_probe(ws).run(ws).state is BuildState.GREEN  # @check does not run tests
    monkeypatch.setenv("BACTRIAN_BUILD_DUNE_TARGETS", "@check @runtest")
    res = choose_probe(ws).run(ws)
    assert res.state is BuildState.RED
    assert [(d.kind, d.file) for d in res.diagnostics] == [("test", "test/t.ml")]
    assert "@runtest" in res.command


def test_command_probe_runs_only_when_the_tree_changed(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    counter = tmp_path / "runs"
    probe = choose_probe(ws, build_cmd=f"echo run >> {counter}; exit 2")
    assert isinstance(probe, CommandProbe) and probe.name == "command"
    first = probe.run(ws, "t1")
    assert first.state is BuildState.RED and first.exit_code == 2
    again = probe.run(ws, "t1")
    assert again.to_dict() == first.to_dict()
    assert counter.read_text().count("run") == 1
    probe.run(ws, "t2")
    probe.run(ws, None)  # no tree id: always runs
    probe.run(ws, "t2")
    assert counter.read_text().count("run") == 3
    assert os.listdir(ws) == []  # the probe wrote nothing into the workspace


def test_green_command_and_low_priority(tmp_path: Path) -> None:
    res = CommandProbe(command="awk '{print \"nice=\" $19}' /proc/self/stat").run(tmp_path)
    assert res.state is BuildState.GREEN
    assert "nice=19" in res.log
    res = CommandProbe(
        command="awk '{print \"nice=\" $19}' /proc/self/stat", low_priority=False
    ).run(tmp_path)
    assert "nice=19" not in res.log


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    cmd = (
        f"sleep 300 & echo $! >> {pids}; (sleep 300; true) & echo $! >> {pids}; echo started; wait"
    )
    # normal priority: on a busy shared machine a nice-19 shell may not even start in time
    res = CommandProbe(command=cmd, timeout_s=2.0, low_priority=False).run(tmp_path)
    assert res.state is BuildState.UNKNOWN and res.exit_code is None
    assert "started" in res.log
    assert "timed out after 2 s" in res.log and "process group was killed" in res.log
    children = [int(x) for x in pids.read_text().split()]
    assert len(children) == 2
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in children)


def test_lock_serialises_builds_of_one_workspace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    trace = tmp_path / "trace"
    probe = CommandProbe(command=f"echo start >> {trace}; sleep 0.3; echo end >> {trace}")
    threads = [threading.Thread(target=probe.run, args=(ws,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert trace.read_text().split() == ["start", "end"] * 3
    assert os.listdir(ws) == []  # the lock lives outside the workspace
    assert list((probe_mod.data_dir() / "locks").iterdir())


def test_busy_lock_gives_unknown_after_the_wait(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    probe = CommandProbe(command=f"touch {marker}", lock_wait_s=0.2)
    with workspace_lock(tmp_path, 0) as held:
        assert held
        res = probe.run(tmp_path)
    assert res.state is BuildState.UNKNOWN
    assert "another build" in res.log
    assert not marker.exists()
    assert probe.run(tmp_path).state is BuildState.GREEN  # lock released


def test_missing_tool_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    res = CommandProbe(command="no-such-build-tool-xyz --all").run(tmp_path)
    assert res.state is BuildState.UNKNOWN and res.exit_code == 127
    assert "no-such-build-tool-xyz" in res.log and "install" in res.log
    ws = write_project(tmp_path / "ws", {})
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    res = choose_probe(ws).run(ws)
    assert res.state is BuildState.UNKNOWN
    assert "apt-get install ocaml-dune" in res.log
    res = CommandProbe(command="cd . && no-such-tool-in-chain x").run(tmp_path)
    assert res.state is BuildState.UNKNOWN
    assert "`no-such-tool-in-chain`" in res.log.splitlines()[-1]
    res = CommandProbe(command=["no-such-binary-argv"]).run(tmp_path)
    assert res.state is BuildState.UNKNOWN and "no-such-binary-argv" in res.log


def test_unknown_results_are_not_cached(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    probe = CommandProbe(command=f"test -e {flag} || sleep 30", timeout_s=2, low_priority=False)
    assert probe.run(tmp_path, "t").state is BuildState.UNKNOWN
    flag.touch()
    assert probe.run(tmp_path, "t").state is BuildState.GREEN


def test_log_is_bounded(tmp_path: Path) -> None:
    res = CommandProbe(
        command="head -c 3000000 /dev/zero | tr '\\0' x; echo; echo TAIL", max_log_bytes=10_000
    ).run(tmp_path)
    assert res.state is BuildState.GREEN
    assert len(res.log.encode()) < 10_200
    assert res.log.rstrip().endswith("TAIL") and "elided" in res.log
    assert bound_log("short", 10) == "short"


def test_choose_probe_fallbacks_and_errors(tmp_path: Path) -> None:
    res = choose_probe(tmp_path).run(tmp_path)
    assert isinstance(choose_probe(tmp_path), NoneProbe)
    assert res.state is BuildState.UNKNOWN and "--build-cmd" in res.log
    with pytest.raises(UnknownNameError, match="Did you mean: dune"):
        choose_probe(tmp_path, probe="dnue")
    with pytest.raises(ConfigError, match="needs a command"):
        choose_probe(tmp_path, probe="command")
    p = choose_probe(tmp_path, build_cmd="make", timeout_s=7)
    assert isinstance(p, CommandProbe) and p.timeout_s == 7
    cfg = BuildConfig(dune_targets="@runtest", dune_args="--root .")
    (tmp_path / "dune-project").write_text("(lang dune 2.9)\n")
    d = choose_probe(tmp_path, config=cfg)
    assert isinstance(d, DuneProbe) and d.command_text == "dune build @runtest --root ."
    assert d.env["DUNE_CACHE"] == "disabled"


def test_config_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("BACTRIAN_BUILD_TIMEOUT_S", "12")
    monkeypatch.setenv("BACTRIAN_BUILD_LOW_PRIORITY", "no")
    cfg = BuildConfig.load()
    assert cfg.timeout_s == 12 and cfg.low_priority is False


def test_a_grandchild_holding_the_output_open_does_not_hang_the_probe(tmp_path: Path) -> None:
    pidfile = tmp_path / "escaped"
    # setsid: the sleeper leaves the build's process group but keeps its stdout (our pipe)
    cmd = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' & echo built"
    try:
        res = CommandProbe(command=cmd, timeout_s=120).run(tmp_path)
        assert res.state is BuildState.GREEN, res.log
        assert "built" in res.log and "kept its output open" in res.log
    finally:
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), 9)


def test_huge_output_is_capped_in_memory_but_keeps_the_tail_errors(tmp_path: Path) -> None:
    tail_error = 'File "a.ml", line 1, characters 0-1:\nError: Unbound value z'
    cmd = f"head -c 5000000 /dev/zero | tr '\\0' y; echo; printf '%s\\n' '{tail_error}'; exit 1"
    res = CommandProbe(command=cmd, max_output_bytes=100_000, max_log_bytes=50_000).run(tmp_path)
    assert res.state is BuildState.RED
    assert [d.message for d in res.diagnostics] == ["Unbound value z"]
    assert "dropped" in res.log or "elided" in res.log
    assert len(res.log.encode()) < 51_000


def test_an_explicit_timeout_of_300_s_overrides_the_config(tmp_path: Path) -> None:
    # 300.0 used to mean "not given", so the config's timeout won over an explicit 300
    cfg = BuildConfig(timeout_s=10)
    p = choose_probe(tmp_path, build_cmd="make", timeout_s=300.0, config=cfg)
    assert isinstance(p, CommandProbe) and p.timeout_s == 300.0
    assert choose_probe(tmp_path, build_cmd="make", config=cfg).timeout_s == 10
