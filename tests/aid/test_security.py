"""Only the owning user can connect: directory and socket modes, and SO_PEERCRED behind
them; no prompt or file content in the log unless asked for."""

from __future__ import annotations

import json
import os
import pwd
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bactrian.aid import protocol as P
from tests.aid.conftest import SRC, SidecarProc, make_workspace


def _as_nobody(path: Path) -> dict[str, object]:
    """Connect to ``path`` from a child process running as ``nobody``; what it saw."""
    nobody = pwd.getpwnam("nobody")
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        out: dict[str, object] = {}
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect(str(path))
                out["connected"] = True
                s.sendall(P.encode({"jsonrpc": "2.0", "id": 1, "method": "status"}))
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                out["reply"] = data.decode(errors="replace")
            except OSError as exc:
                out["error"] = type(exc).__name__
        except BaseException as exc:  # noqa: BLE001
            out["error"] = repr(exc)
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(child, 0)
    return dict(json.loads(data))


@pytest.mark.needs_root
def test_permissions_and_another_uid_is_refused(sidecar: SidecarProc) -> None:
    run_dir = sidecar.socket.parent
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(sidecar.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE((run_dir / ".aid.sock.d").stat().st_mode) == 0o700
    os.chmod(sidecar.base, 0o755)
    seen = _as_nobody(sidecar.socket)
    assert seen == {"error": "PermissionError"}, seen
    with sidecar.client() as c:  # the owner still gets in
        assert c.request("status")["clients"] == 1


@pytest.mark.needs_root
def test_so_peercred_refuses_another_uid_even_through_an_open_socket(
    short_tmp: Path, tmp_path: Path
) -> None:
    """With the file permissions opened up on purpose (a library-only knob), the uid check
    behind them still refuses ``nobody``."""
    os.chmod(short_tmp, 0o755)
    ws = make_workspace(tmp_path / "ws")
    sock = short_tmp / "aid.sock"
    code = (
        "from pathlib import Path\n"
        "from bactrian.aid.config import load_aid_config\n"
        "from bactrian.aid.paths import Layout\n"
        "from bactrian.aid.server import serve\n"
        f"cfg = load_aid_config(Path({str(short_tmp / 'c.toml')!r}))\n"
        f"serve(cfg, Layout(Path({str(sock)!r})), warm=False, socket_mode=0o666,"
        " ready=lambda: print('aid: serving', flush=True))\n"
    )
    (short_tmp / "c.toml").write_text(
        f'[aid]\nmetrics_db = "{short_tmp}/m/m.sqlite"\nbuild_probe = "none"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and "aid: serving" in proc.stdout.readline()
        assert stat.S_IMODE(sock.stat().st_mode) == 0o666
        seen = _as_nobody(sock)
        assert seen.get("connected") is True, (
            seen,
            oct(short_tmp.stat().st_mode),
            oct(sock.stat().st_mode),
            os.listdir(short_tmp),
        )
        reply = str(seen["reply"])
        assert '"code":-32003' in reply and "not the sidecar's owner" in reply
        assert '"result"' not in reply  # status was never answered
        # and the server goes on serving its owner
        from bactrian.aid.client import AidClient

        with AidClient(sock, root=str(ws)) as c:
            assert c.request("status")["clients"] == 1
    finally:
        proc.terminate()
        proc.wait(10)


def test_no_content_in_the_log_unless_turned_on(short_tmp: Path, workspace: Path) -> None:
    secret_prompt = "to_string SECRET-PROMPT-1234"
    (workspace / "lib" / "shape.ml").write_text("type t = Circle of float\n")
    (workspace / "lib" / "other.ml").write_text("let secret_file_content_5678 = 1\n")
    sc = SidecarProc(short_tmp, workspace, env={"BACTRIAN_LOG_LEVEL": "DEBUG"}).start()
    try:
        with sc.client() as c:
            c.propose_wait(
                {
                    "prompt": secret_prompt,
                    "file": {"path": "lib/shape.ml"},
                    "buffers": [
                        {"path": "lib/other.ml", "text": "let secret_file_content_5678 = 1\n"}
                    ],
                }
            )
        time.sleep(0.2)
        log = sc.stderr_path.read_text()
        assert "DEBUG" in log or "INFO" in log or log  # the log level was on
        assert "SECRET-PROMPT" not in log and "secret_file_content" not in log
    finally:
        sc.stop()
    base2 = short_tmp / "on"
    base2.mkdir()
    sc2 = SidecarProc(
        base2, workspace, aid={"log_content": True}, env={"BACTRIAN_LOG_LEVEL": "INFO"}
    ).start()
    try:
        with sc2.client() as c:
            c.propose_wait({"prompt": secret_prompt, "file": {"path": "lib/shape.ml"}})
        time.sleep(0.2)
        assert "SECRET-PROMPT" in sc2.stderr_path.read_text()
    finally:
        sc2.stop()
