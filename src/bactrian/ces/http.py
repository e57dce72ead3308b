"""Old home of the CES over HTTP, kept so existing imports work: the service is
:mod:`bactrian.ces.service`, its client :mod:`bactrian.ces.client`."""

from bactrian.ces.client import CESClient, token_from_env
from bactrian.ces.service import (
    API_VERSION,
    DEFAULT_HOST,
    DEFAULT_PORT,
    BatchRunner,
    BodyLimit,
    Retention,
    create_app,
    make_backend,
    serve,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "BatchRunner",
    "BodyLimit",
    "CESClient",
    "Retention",
    "create_app",
    "make_backend",
    "serve",
    "token_from_env",
]
