"""Build status for ``status``, the ``build_status`` tool and the diagnostics of a proposal:
the snapshotter's build probe (:func:`bactrian.buildstatus.probe.choose_probe`: a live
``bactrian build watch``, dune, a command, or none), run in the background at most every
``[aid] build_ttl_s`` per workspace, never on a request's critical path."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.aid.config import AidConfig
from bactrian.buildstatus.probe import choose_probe
from bactrian.errors import BactrianError

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    result: dict[str, Any] | None = None
    at: float = 0.0
    running: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class BuildCache:
    def __init__(self, config: AidConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._entries: dict[Path, _Entry] = {}

    def _probe(self, root: Path, entry: _Entry) -> None:
        start = time.time()
        try:
            probe = choose_probe(
                root, probe=self.config.build_probe, timeout_s=self.config.build_timeout_s
            )
            res = probe.run(root)
            out: dict[str, Any] = {
                "status": res.state.value,
                "diagnostics": [d.to_dict() for d in res.diagnostics],
                "durationS": round(res.duration_s, 3),
                "at": time.time(),
                "probe": res.probe or probe.name,
            }
        except (BactrianError, OSError) as exc:
            out = {
                "status": "unknown",
                "diagnostics": [],
                "durationS": round(time.time() - start, 3),
                "at": time.time(),
                "probe": self.config.build_probe,
                "error": str(exc),
            }
        with self._lock:
            entry.result, entry.at, entry.running = out, time.monotonic(), False
        entry.done.set()

    def refresh_soon(self, root: Path) -> _Entry:
        with self._lock:
            entry = self._entries.setdefault(root, _Entry())
            stale = entry.result is None or time.monotonic() - entry.at > self.config.build_ttl_s
            start = stale and not entry.running
            if start:
                entry.running = True
        if start:
            threading.Thread(
                target=self._probe, args=(root, entry), daemon=True, name="aid-build"
            ).start()
        return entry

    def get(self, root: Path, wait_s: float = 0.0) -> dict[str, Any]:
        """The latest result (waiting up to ``wait_s`` for the first one); a pending first
        probe reads ``{"status": "unknown", "pending": true}``."""
        entry = self.refresh_soon(root)
        if entry.result is None and wait_s > 0:
            entry.done.wait(wait_s)
        with self._lock:
            if entry.result is None:
                return {
                    "status": "unknown",
                    "diagnostics": [],
                    "durationS": None,
                    "at": None,
                    "pending": True,
                }
            return dict(entry.result)

    def diagnostics(self, root: Path) -> list[dict[str, Any]]:
        return list(self.get(root).get("diagnostics") or [])
