"""The Emacs client (editors/emacs/bactrian.el) in real Emacs against a real sidecar: it
byte-compiles without warnings and is package-lint clean, and its ERT suite (ask, stream,
apply, accept / edit / reject, a change of nothing, files not open, cancel, status, the shared
transcript) passes in ``emacs --batch``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.editors.conftest import Sidecar
from tests.editors.editor_run import EMACS_DIR, check_ok, emacs_batch


def test_byte_compiles_without_warnings(sidecar: Sidecar, tmp_path: Path) -> None:
    src = tmp_path / "bactrian.el"
    shutil.copy(EMACS_DIR / "bactrian.el", src)
    out = emacs_batch(
        sidecar, "--eval", "(setq byte-compile-error-on-warn t)", "-f", "batch-byte-compile",
        str(src),
    )  # fmt: skip
    check_ok(out, "byte-compiling bactrian.el")
    assert (tmp_path / "bactrian.elc").is_file()
    assert "Warning" not in out.stderr, out.stderr


def test_package_lint_clean(sidecar: Sidecar) -> None:
    out = emacs_batch(
        sidecar, "--eval", "(require 'package-lint)", "-f", "package-lint-batch-and-exit",
        str(EMACS_DIR / "bactrian.el"),
    )  # fmt: skip
    issues = [
        line
        for line in out.stderr.splitlines()
        if line.startswith("bactrian.el:")
        # Debian's package-lint 0.16 knows no Emacs after 27: it calls any (emacs "28.1")
        # dependency uninstallable; the client needs Emacs 28 (bookworm ships 28.2)
        and "uninstallable in all released Emacs versions" not in line
    ]
    assert issues == [], out.stderr


def test_ert_suite_against_a_real_sidecar(sidecar: Sidecar) -> None:
    out = emacs_batch(sidecar, "-l", "bactrian-test", "-f", "ert-run-tests-batch-and-exit")
    check_ok(out, "the ERT suite")
    assert re.search(r"^Ran (\d+) tests, \1 results as expected, 0 unexpected", out.stderr, re.M), (
        out.stderr
    )
