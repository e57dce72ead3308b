"""Optional extras: heavy dependencies that only some parts need.

The core (snapshot, buildstatus, diffs, mine, dataset) and the sidecar (aid) import none of
them at import time. Code that needs one calls :func:`require` where it is used, so a missing
extra is a one-line "install bactrian[ray]" instead of an ``ImportError`` traceback.

    extra    modules
    ray      ray
    serve    fastapi, uvicorn, prometheus_client
    data     datasets, pyarrow
    train    trl (over the models extra: torch, transformers, peft)
"""

from __future__ import annotations

import importlib
from types import ModuleType

from bactrian.errors import MissingExtraError

# module -> the extra that installs it
EXTRAS: dict[str, str] = {
    "ray": "ray",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "datasets": "data",
    "pyarrow": "data",
    "torch": "models",
    "transformers": "models",
    "accelerate": "models",
    "gguf": "models",
    "peft": "models",
    "trl": "train",
}

# modules the core must never import at import time
HEAVY_MODULES: tuple[str, ...] = tuple(EXTRAS)


def require(module: str, extra: str | None = None, *, what: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install."""
    extra = extra or EXTRAS.get(module.split(".")[0], module.split(".")[0])
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        needed = f" ({what})" if what else ""
        raise MissingExtraError(
            f"{module!r} is not installed{needed}: install bactrian[{extra}] "
            f"(pip install 'bactrian[{extra}]', or `make setup` for every extra)."
        ) from exc
