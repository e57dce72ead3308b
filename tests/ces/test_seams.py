"""The CES seams: one registry per seam, each holding typed factories; backends registered in
one module; Protocols declare what callers use."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from bactrian.ces.adapters import ADAPTERS, AdapterConfig, DuneAdapter, GenericAdapter
from bactrian.ces.backends import BACKENDS, make_backend
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import CESBackend
from bactrian.ces.local import LocalBackend
from bactrian.ces.sandbox import SANDBOXES, BwrapSandbox, NoSandbox, Sandbox, get_sandbox
from bactrian.errors import ConfigError


def test_every_sandbox_implements_the_whole_protocol() -> None:
    members = {n for n, _ in inspect.getmembers(Sandbox) if not n.startswith("_")}
    assert {"run", "check"} <= members
    for cls in (NoSandbox, BwrapSandbox):
        assert members <= {n for n, _ in inspect.getmembers(cls)}, cls
    assert isinstance(SANDBOXES.get("none")(CESConfig()), NoSandbox)
    assert isinstance(get_sandbox("bwrap"), BwrapSandbox)


def test_no_sandbox_check_passes(tmp_path: Path) -> None:
    get_sandbox("none").check(tmp_path)


def test_adapter_factories_take_one_config() -> None:
    dune = ADAPTERS.get("dune")(AdapterConfig(jobs=3))
    assert isinstance(dune, DuneAdapter) and dune.jobs == 3
    assert isinstance(ADAPTERS.get("generic")(AdapterConfig(jobs=3)), GenericAdapter)


def test_backends_are_registered_in_one_place_without_importing_them_first(tmp_path: Path) -> None:
    assert BACKENDS.names() == ["http", "local", "ray"]
    backend = make_backend("local", CESConfig(workers=1, work_dir=tmp_path))
    try:
        assert isinstance(backend, LocalBackend) and isinstance(backend, CESBackend)
    finally:
        backend.close()
    with pytest.raises(ConfigError, match="--backend ray"):
        make_backend("local", CESConfig(work_dir=tmp_path), address="auto")
