"""Deploy by restart: a connected client keeps working across ``bactrian aid restart`` and
SIGHUP; what was in flight gets the retryable error, never a hang."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from bactrian.aid import protocol as P
from tests.aid.conftest import SRC, SidecarProc


def test_restart_in_flight_gets_retryable_error_and_client_reconnects(sidecar: SidecarProc) -> None:
    c = sidecar.client(name="editor")
    try:
        old = c.request("status")
        done = c.propose_wait({"prompt": "to_string", "file": {"path": "lib/shape.ml"}})[-1]
        pid, q = c.propose({"prompt": "say it slowly", "file": {"path": "lib/shape.ml"}})
        assert q.get(timeout=30)["kind"] == "context"
        t0 = time.monotonic()
        out = sidecar.run_cli("restart", timeout=120)
        assert out.returncode == 0, out.stderr
        assert "replaced" in out.stdout
        evs = c.events(pid, q, 30)
        # the proposal in flight ended with -32001 (retryable), not a hang
        assert evs[-1]["kind"] in ("error", "lost")
        if evs[-1]["kind"] == "error":
            assert evs[-1]["code"] == P.RESTARTING and evs[-1]["retryable"]
        assert c.restarting.is_set() or evs[-1]["kind"] == "lost"
        # the same client object, no editor restart: the next request reconnects and works
        t1 = time.monotonic()
        new = c.request("status")
        answered = time.monotonic() - t1
        assert new["serverId"] != old["serverId"] and new["pid"] != old["pid"]
        assert new["workspaceRoot"] == str(sidecar.workspace)  # initialize was re-sent
        assert answered < 1.0, answered
        assert time.monotonic() - t0 < 60
        # a proposal made before the restart can still be applied and rated
        res = c.request("apply", {"proposalId": done["proposalId"]})
        assert res["applied"]
        c.request("feedback", {"proposalId": done["proposalId"], "outcome": "accepted"})
        again = c.propose_wait({"prompt": "to_string", "file": {"path": "lib/shape.ml"}})[-1]
        assert again["kind"] == "final" and again["applies"]
    finally:
        c.close()
    # the old server is gone
    try:
        os.kill(old["pid"], 0)
        gone = False
    except ProcessLookupError:
        gone = True
    if not gone:  # it may be a zombie child of the fixture: reap it
        assert sidecar.proc is not None and sidecar.proc.wait(10) is not None


def test_pending_request_during_restart_is_retried(sidecar: SidecarProc) -> None:
    """A client whose request meets -32001 or a closed connection sends it again."""
    c = sidecar.client()
    results: list[object] = []
    try:

        def hammer() -> None:
            for _ in range(60):
                results.append(c.request("tools/list")["tools"][0]["name"])
                time.sleep(0.02)

        t = threading.Thread(target=hammer)
        t.start()
        time.sleep(0.2)
        out = sidecar.run_cli("restart", timeout=120)
        assert out.returncode == 0, out.stderr
        t.join(60)
        assert not t.is_alive()
        assert len(results) == 60 and set(results) == {"build_status"}
    finally:
        c.close()


def test_sighup_reloads_config(sidecar: SidecarProc) -> None:
    with sidecar.client() as c:
        before = c.request("status")
        text = sidecar.config.read_text().replace(
            'model = "scripted"', 'model = "scripted"\nstrategy = "whole-file"'
        )
        sidecar.config.write_text(text)
        os.kill(sidecar.server_pid(), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = c.request("status")
            if after["serverId"] != before["serverId"]:
                break
            time.sleep(0.05)
        assert after["pid"] == before["pid"] and after["serverId"] != before["serverId"]
    with sidecar.client() as c2:
        assert c2.init_result is not None and c2.init_result["arm"]["strategy"] == "whole-file"
        # a broken config is refused and the old one stays
        sidecar.config.write_text(text + "\n[aid]\nnot valid = = toml\n")
        os.kill(sidecar.server_pid(), signal.SIGHUP)
        time.sleep(0.5)
        assert c2.request("status")["pid"] == before["pid"]


def test_a_new_install_hands_the_socket_over(
    short_tmp: Path, workspace: Path, tmp_path: Path
) -> None:
    """``pip install`` of a new bactrian rewrites its dist-info: the running server notices
    and a server of the new install takes over; connected clients just reconnect."""
    site = tmp_path / "site"
    meta = site / "bactrian-0.1.0.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: bactrian\nVersion: 0.1.0\n")
    env = {"PYTHONPATH": f"{SRC}{os.pathsep}{site}"}
    sc = SidecarProc(short_tmp, workspace, aid={"upgrade_check_s": 0.2}, env=env).start()
    try:
        with sc.client() as c:
            before = c.request("status")
            time.sleep(0.5)
            assert c.request("status")["serverId"] == before["serverId"]  # nothing changed yet
            (meta / "METADATA").write_text(
                "Metadata-Version: 2.1\nName: bactrian\nVersion: 0.2.0\n"
            )
            deadline = time.monotonic() + 60
            after = before
            while time.monotonic() < deadline and after["pid"] == before["pid"]:
                time.sleep(0.1)
                after = c.request("status")
            assert after["pid"] != before["pid"] and after["serverId"] != before["serverId"]
            time.sleep(1.0)  # and it does not hand over again
            assert c.request("status")["pid"] == after["pid"]
    finally:
        sc.stop()
