"""Model fixtures: the real SmolLM2, converted once into a cache shared by test runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.models.modelcache import MODEL_CACHE, use_model_cache

use_model_cache()


@pytest.fixture(scope="session")
def smollm2_dir() -> object:
    """The converted SmolLM2 checkpoint (converted on the first run, ~1 min; reused after)."""
    from bactrian.models.smollm2 import ensure_checkpoint

    return ensure_checkpoint(MODEL_CACHE)


@pytest.fixture(scope="session")
def smollm2(smollm2_dir: object) -> Iterator[object]:
    """The local transformers backend over SmolLM2, loaded once per test session."""
    from bactrian.models import make_backend

    backend = make_backend("smollm2")
    yield backend
