"""``[diffs]`` settings: the limits an application obeys and the lenient ladder's thresholds.

[diffs]
max_file_bytes = 4194304     # or BACTRIAN_DIFFS_MAX_FILE_BYTES
max_files = 1000
fuzzy_threshold = 0.75
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bactrian.config import load_section
from bactrian.diffs.ladder import LadderConfig
from bactrian.diffs.model import DiffLimits
from bactrian.errors import ConfigError


@dataclass
class DiffsConfig:
    max_file_bytes: int = DiffLimits.max_file_bytes
    max_files: int = DiffLimits.max_files
    fuzzy_threshold: float = LadderConfig.fuzzy_threshold
    fuzzy_margin: float = LadderConfig.fuzzy_margin
    line_similarity: float = LadderConfig.line_similarity
    max_gap: int = LadderConfig.max_gap
    max_unmatched: int = LadderConfig.max_unmatched

    def __post_init__(self) -> None:
        for name in ("fuzzy_threshold", "fuzzy_margin", "line_similarity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"[diffs] {name} must be between 0 and 1.")
        for name in ("max_file_bytes", "max_files", "max_gap", "max_unmatched"):
            if getattr(self, name) < 0:
                raise ConfigError(f"[diffs] {name} must not be negative.")

    def limits(self) -> DiffLimits:
        return DiffLimits(max_file_bytes=self.max_file_bytes, max_files=self.max_files)

    def ladder(self) -> LadderConfig:
        return LadderConfig(
            fuzzy_threshold=self.fuzzy_threshold,
            fuzzy_margin=self.fuzzy_margin,
            line_similarity=self.line_similarity,
            max_gap=self.max_gap,
            max_unmatched=self.max_unmatched,
        )


def load_diffs_config(**overrides: Any) -> DiffsConfig:
    """``[diffs]`` from the config file, ``BACTRIAN_DIFFS_*`` and ``overrides``."""
    return load_section(DiffsConfig, "diffs", overrides=overrides)
