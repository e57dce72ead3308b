"""Deploying a new sidecar: start a server process (``bactrian aid restart``, ``serve
--detach``), and, with ``[aid] restart_on_upgrade``, notice that a new version of bactrian was
installed and hand the socket over to a server running the new code — no editor restarts.

An installation is recognised by its ``bactrian`` distribution metadata as Python finds it
(the ``*.dist-info`` directory: name, version and the mtime of its files), which ``pip
install`` rewrites; editing the sources of an editable install does not count.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from bactrian.aid.paths import Layout

log = logging.getLogger(__name__)


def spawn_server(layout: Layout, config: Path | None, *, takeover: bool, warm: bool = True) -> int:
    """Start ``bactrian aid serve`` in the background (its own session, output in the state
    directory's log); ``takeover`` replaces the server running on the socket."""
    layout.prepare()
    argv = [sys.executable, "-m", "bactrian.cli", "aid", "serve", "--socket", str(layout.socket)]
    if config is not None:
        argv += ["--config", str(config)]
    if takeover:
        argv.append("--takeover")
    if not warm:
        argv.append("--no-warm")
    with open(layout.log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    return proc.pid


def install_fingerprint() -> str:
    """What identifies the installed bactrian: its metadata's version and files' mtimes."""
    try:
        dist = importlib.metadata.distribution("bactrian")
    except importlib.metadata.PackageNotFoundError:
        return ""
    parts = [dist.version or ""]
    meta = getattr(dist, "_path", None)  # the *.dist-info directory (PathDistribution)
    for rel in ("METADATA", "RECORD", "direct_url.json"):
        with contextlib.suppress(OSError, TypeError):
            parts.append(f"{rel}:{os.stat(Path(str(meta)) / rel).st_mtime_ns}")
    return "|".join(parts)


class UpgradeWatcher:
    """Polls :func:`install_fingerprint` every ``interval_s``; on a change starts a successor
    (takeover) once."""

    def __init__(self, layout: Layout, config: Path | None, interval_s: float) -> None:
        self.layout = layout
        self.config = config
        self.interval_s = interval_s
        self.start_print = install_fingerprint()
        self._stop = threading.Event()
        self.spawned: int | None = None

    def check(self) -> bool:
        now = install_fingerprint()
        if now == self.start_print or self.spawned is not None:
            return False
        log.warning("a new bactrian was installed (%s): handing over to a new server", now)
        self.spawned = spawn_server(self.layout, self.config, takeover=True)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except OSError as exc:
                log.error("the upgrade check failed: %s", exc)

    def start(self) -> None:
        threading.Thread(target=self._loop, daemon=True, name="aid-upgrade").start()

    def stop(self) -> None:
        self._stop.set()
