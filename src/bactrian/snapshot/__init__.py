"""Snapshotter: records a workspace's file tree and build status into a content-addressed
store kept outside the workspace (a private git object database + a SQLite index)."""

from bactrian.snapshot.config import SnapshotConfig, load_config
from bactrian.snapshot.store import Snapshot, Store, list_workspaces, open_store
from bactrian.snapshot.take import NullProbe, take_snapshot

__all__ = [
    "NullProbe",
    "Snapshot",
    "SnapshotConfig",
    "Store",
    "list_workspaces",
    "load_config",
    "open_store",
    "take_snapshot",
]
