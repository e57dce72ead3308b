"""The shape of the package: light imports for the core, and optional extras that fail with
what to install."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bactrian.errors import MissingExtraError
from bactrian.extras import HEAVY_MODULES, require

# every part's CLI module (and the sidecar's home): none may pull a heavy engine at import
LIGHT_MODULES = [
    "bactrian.cli",
    "bactrian.snapshot.cli",
    "bactrian.buildstatus.cli",
    "bactrian.diffs.cli",
    "bactrian.mine.cli",
    "bactrian.dataset.cli",
    "bactrian.ces.cli",
    "bactrian.sample.cli",
    "bactrian.aid",
    "bactrian.demo",
]


def _heavy_after_import(module: str) -> list[str]:
    code = (
        "import json, sys\n"
        f"import {module}\n"
        f"heavy = {list(HEAVY_MODULES)!r}\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_cli_modules_import_no_heavy_engine(module: str) -> None:
    assert _heavy_after_import(module) == []


def test_heavy_modules_are_installed_for_the_tests() -> None:
    # `make test` installs every extra: the suites that use them must run, not skip
    for module in HEAVY_MODULES:
        if module in ("torch", "transformers", "trl"):
            continue  # bactrian[train] is a placeholder until the training part lands
        require(module)


def test_missing_extra_names_what_to_install() -> None:
    with pytest.raises(MissingExtraError, match=r"install bactrian\[ray\]"):
        require("bactrian_no_such_module_for_test", "ray")
