"""Ray set-up in one place: the miner's parallel executor and the CES Ray backend both start
(or join) Ray through :func:`connect` and stop only a Ray they started.

Ray is the ``bactrian[ray]`` extra: nothing here imports it until :func:`ray_module` is
called, and a missing install is a one-line "install bactrian[ray]".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bactrian.errors import BactrianError
from bactrian.extras import require


def ray_module() -> Any:
    """The ``ray`` module (usage statistics off), or :class:`MissingExtraError`."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return require("ray", "ray", what="Ray executors and the CES Ray backend")


def connect(
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    object_store_mb: int | None = None,
    namespace: str | None = None,
    error: type[BactrianError] = BactrianError,
) -> tuple[Any, bool]:
    """Join Ray if it is already initialised, else start it: on ``address`` (a cluster, or
    "auto") or a new local Ray with ``num_cpus``/``object_store_mb``. Returns ``(ray,
    started)``; ``started`` says whether the caller owns the session (and shuts it down)."""
    ray = ray_module()
    if ray.is_initialized():
        return ray, False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if namespace:
        kwargs["namespace"] = namespace
    if address:
        kwargs["address"] = address
    else:
        if num_cpus:
            kwargs["num_cpus"] = num_cpus
        if object_store_mb:
            kwargs["object_store_memory"] = object_store_mb * 1024 * 1024
    try:
        ray.init(**kwargs)
    except Exception as exc:
        where = address or "a new local Ray"
        raise error(
            f"Cannot start or reach Ray ({where}): {exc}. Check the address (e.g. "
            "BACTRIAN_CES_RAY_ADDRESS) and that `ray status` works there."
        ) from exc
    return ray, True


def shutdown(started: bool) -> None:
    """Stop Ray if this process started it (``started`` from :func:`connect`)."""
    if not started:
        return
    ray = ray_module()
    if ray.is_initialized():
        ray.shutdown()


@contextmanager
def session(**kwargs: Any) -> Iterator[Any]:
    """``with session() as ray:`` joins or starts Ray and stops it after if it started it."""
    ray, started = connect(**kwargs)
    try:
        yield ray
    finally:
        shutdown(started)
