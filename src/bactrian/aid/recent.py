"""Recently edited files of a workspace, from its snapshot store (when the snapshotter
records it): the paths changed in the last few snapshots, newest first. Read-only; cached
for a few seconds per workspace."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from bactrian.errors import BactrianError
from bactrian.snapshot import open_store

log = logging.getLogger(__name__)
TTL_S = 15.0
SNAPSHOTS = 8


class RecentFiles:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[float, list[str]]] = {}

    def _read(self, root: Path) -> list[str]:
        try:
            store = open_store(root)
        except BactrianError:
            return []  # not snapshotted
        try:
            snaps = store.timeline()[-SNAPSHOTS:]
            out: list[str] = []
            for prev, snap in reversed(list(zip([None, *snaps[:-1]], snaps, strict=True))):
                if prev is None:
                    continue
                for p in store.changed_paths(prev, snap):
                    if p not in out:
                        out.append(p)
            return out
        except (BactrianError, OSError) as exc:
            log.debug("recent files of %s: %s", root, exc)
            return []
        finally:
            store.close()

    def get(self, root: Path) -> list[str]:
        if self.limit <= 0:
            return []
        with self._lock:
            hit = self._cache.get(root)
        if hit is not None and time.monotonic() - hit[0] < TTL_S:
            return hit[1][: self.limit]
        files = self._read(root)
        with self._lock:
            self._cache[root] = (time.monotonic(), files)
        return files[: self.limit]
