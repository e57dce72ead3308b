"""Every CES backend, registered here and nowhere else: importing a backend's module registers
nothing, and no caller special-cases one. Importing this module does not import Ray (the ray
backend imports it when it connects, through :mod:`bactrian.rayutil`).

    BACKENDS.get("local")(config)                     # a pool of worker threads
    BACKENDS.get("ray")(config, address="auto")       # workers as Ray actors
    BACKENDS.get("http")(config)                      # a running `bactrian ces serve` ([ces] url)
    make_backend(name, config, address=...)           # the same, by name
"""

from __future__ import annotations

from bactrian.ces.client import CESClient
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BackendFactory, CESBackend
from bactrian.ces.local import LocalBackend
from bactrian.ces.ray_backend import RayBackend
from bactrian.errors import ConfigError
from bactrian.registry import Registry


def _local(config: CESConfig, *, address: str | None = None) -> CESBackend:
    if address:
        raise ConfigError("--address only applies to --backend ray.")
    return LocalBackend(config)


def _ray(config: CESConfig, *, address: str | None = None) -> CESBackend:
    return RayBackend(config, address=address)


def _http(config: CESConfig, *, address: str | None = None) -> CESBackend:
    if address:
        raise ConfigError(
            "--address only applies to --backend ray; the http backend uses [ces] url."
        )
    return CESClient.from_config(config)


BACKENDS: Registry[BackendFactory] = Registry("CES backend")
"""Named backend factories: ``BACKENDS.get("local")(config) -> CESBackend``."""
BACKENDS.add("local", _local)
BACKENDS.add("ray", _ray)
BACKENDS.add("http", _http)


def make_backend(name: str, config: CESConfig, *, address: str | None = None) -> CESBackend:
    """A new backend named ``name`` built from ``config``; the caller owns it (unlike
    :func:`bactrian.ces.api.get_backend`, which shares one per process)."""
    return BACKENDS.get(name)(config, address=address)
