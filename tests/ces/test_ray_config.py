"""Fast checks of the Ray backend that start no Ray: registration, settings, idle status."""

from __future__ import annotations

import pytest

from bactrian.ces.backends import BACKENDS
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import CESBackend
from bactrian.ces.ray_backend import RayBackend, RayConfig
from bactrian.errors import ConfigError


def test_ray_backend_is_registered_and_satisfies_the_protocol() -> None:
    backend = BACKENDS.get("ray")(CESConfig(workers=2))
    assert isinstance(backend, RayBackend)
    assert isinstance(backend, CESBackend)
    st = backend.status()
    assert st["backend"] == "ray"
    assert st["workers"] == 0 and st["bases"] == [] and st["queue_depth"] == 0
    backend.close()  # nothing started, nothing to stop


def test_address_comes_from_env_and_the_option_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACTRIAN_CES_RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("BACTRIAN_CES_RAY_NUM_CPUS", "3")
    assert RayConfig.load().address == "ray://head:10001"
    assert RayConfig.load().num_cpus == 3
    assert RayBackend(CESConfig()).status()["address"] == "ray://head:10001"
    assert RayBackend(CESConfig(), address="auto").status()["address"] == "auto"


def test_bad_ray_setting_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACTRIAN_CES_RAY_NUM_CPUS", "many")
    with pytest.raises(ConfigError, match="BACTRIAN_CES_RAY_NUM_CPUS"):
        RayConfig.load()
