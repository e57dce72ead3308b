"""The Neovim client (editors/nvim) in real Neovim, headless, against a real sidecar, on
Debian's Neovim 0.7.2 and on a current one (0.12): ask, stream, apply, accept / edit /
reject, a change of nothing, files not open, cancel, status, :checkhealth and the shared
transcript (tests/editors/nvim/test_client.lua)."""

from __future__ import annotations

import pytest

from tests.editors.conftest import Sidecar
from tests.editors.editor_run import HERE, check_ok, nvim_headless, nvim_version, nvims


@pytest.mark.parametrize("which", [0, 1], ids=["debian-0.7", "current"])
def test_headless_suite_against_a_real_sidecar(sidecar: Sidecar, which: int) -> None:
    nvim = nvims()[which]
    version = nvim_version(nvim)
    assert version.startswith("NVIM v0.7." if which == 0 else "NVIM v0.1"), version
    out = nvim_headless(
        sidecar, nvim, HERE / "nvim" / "test_client.lua", BACTRIAN_TEST_LUA=str(HERE / "nvim")
    )
    check_ok(out, f"the headless suite on {version}")
    assert " 0 failed" in out.stdout and "FAIL" not in out.stdout, out.stdout
