"""One stable model cache for every test run (the converted SmolLM2 checkpoint lives there),
so runs reuse it instead of converting again. Test packages that load models call
:func:`use_model_cache` from their conftest."""

from __future__ import annotations

import os
from pathlib import Path

MODEL_CACHE = Path(
    os.environ.get("BACTRIAN_TEST_MODEL_CACHE")
    or Path.home() / ".cache" / "bactrian-tests" / "models"
)


def use_model_cache() -> None:
    os.environ["BACTRIAN_MODEL_CACHE"] = str(MODEL_CACHE)
