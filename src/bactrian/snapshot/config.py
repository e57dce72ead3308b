"""Settings of the snapshotter (``[snapshot]`` in the config file, ``BACTRIAN_SNAPSHOT_*``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.config import data_dir, load_section

DEFAULT_IGNORE: list[str] = [
    "_build/",
    "_opam/",
    "_esy/",
    "node_modules/",
    ".hg/",
    ".svn/",
    ".bzr/",
    "_darcs/",
    ".direnv/",
    "__pycache__/",
    ".mypy_cache/",
    ".venv/",
    "*.pyc",
    "*.swp",
    "*~",
    ".#*",
    "#*#",
    ".DS_Store",
]

DEFAULT_SECRET_PATTERNS: list[str] = [
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    "credentials.json",
    ".git-credentials",
    "*.secret",
    "secrets.*",
    "*.ppk",
    ".aws/",
    ".ssh/",
    ".gnupg/",
    ".docker/config.json",
    ".kube/config",
    ".htpasswd",
    "*.tfstate",
]


@dataclass
class SnapshotConfig:
    """How often and what to record, where to keep it, and how to learn the build status."""

    interval_s: float = 20.0
    store_dir: Path | None = None  # default: data_dir() / "snapshots"
    max_file_bytes: int = 1_000_000
    ignore: list[str] = field(default_factory=lambda: list(DEFAULT_IGNORE))
    secret_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_SECRET_PATTERNS))
    probe: str = "auto"  # a name from bactrian.buildstatus.probe.PROBES, or "none"
    build_cmd: str | None = None  # overrides the probe with a command probe
    build_timeout_s: float = 300.0
    repack_every: int = 50  # pack loose objects (with deltas) after this many new snapshots

    def resolved_store_dir(self) -> Path:
        return Path(self.store_dir) if self.store_dir else data_dir() / "snapshots"


def load_config(**overrides: Any) -> SnapshotConfig:
    """``[snapshot]`` from the config file and environment, then non-``None`` ``overrides``."""
    return load_section(SnapshotConfig, "snapshot", overrides=overrides)
