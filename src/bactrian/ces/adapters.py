"""Language adapters: the command of each stage, and how to read its output.

``dune`` (OCaml): parse = ``ocamlc -stop-after parsing`` on the touched ``.ml``/``.mli`` files
(milliseconds, no build), typecheck = ``dune build @check``, build = ``dune build``, test =
``dune runtest``; a syntax error that only ``dune build @check`` sees (a file the parse step does
not cover) still counts as a parse failure. ``generic``: every command comes from the base's
``stages`` (an empty or missing command skips the stage).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bactrian.buildstatus.diagnostics import parse_ocaml as build_parse_ocaml
from bactrian.dune import is_dune_project
from bactrian.registry import Registry
from bactrian.types import Diagnostic


class Adapter(Protocol):
    name: str

    def command(self, stage: str, touched: Sequence[str], overrides: dict[str, str]) -> str | None:
        """The shell command of ``stage`` (None or "" = skip), run at the tree root."""
        ...

    def diagnostics(self, output: str) -> list[Diagnostic]: ...

    def test_summary(self, output: str) -> dict[str, int] | None: ...


ADAPTERS: Registry[type] = Registry("CES adapter")

_ALCOTEST_OK = re.compile(r"Test Successful in [0-9.]+s\. (\d+) tests? run\.")
_ALCOTEST_FAIL = re.compile(r"(\d+) failures?! in [0-9.]+s\. (\d+) tests? run\.")


def alcotest_summary(output: str) -> dict[str, int] | None:
    """Sum alcotest's final lines over every test executable in ``output``."""
    passed = failed = total = 0
    found = False
    for m in _ALCOTEST_OK.finditer(output):
        found = True
        n = int(m.group(1))
        passed += n
        total += n
    for m in _ALCOTEST_FAIL.finditer(output):
        found = True
        f, n = int(m.group(1)), int(m.group(2))
        failed += f
        passed += n - f
        total += n
    return {"passed": passed, "failed": failed, "total": total} if found else None


def parse_ocaml(text: str) -> list[Diagnostic]:
    """OCaml diagnostics (``bactrian.buildstatus.diagnostics``)."""
    return build_parse_ocaml(text)


@ADAPTERS.register("dune")
class DuneAdapter:
    """``jobs`` is dune's ``-j``: a pool of N workers on C cores gives each worker C/N, so
    workers do not fight over cores (one dune per core scales; N dunes each at -jC do not)."""

    name = "dune"
    defaults = {
        "typecheck": "dune build{j} --root . @check 2>&1",
        "build": "dune build{j} --root . 2>&1",
        "test": "dune runtest{j} --root . --force 2>&1",
    }

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = jobs

    def command(self, stage: str, touched: Sequence[str], overrides: dict[str, str]) -> str | None:
        if stage in overrides:
            return overrides[stage] or None
        if stage == "parse":
            files = sorted(p for p in touched if p.endswith((".ml", ".mli")))
            if not files:
                return None
            return "ocamlc -stop-after parsing -c " + " ".join(shlex.quote(f) for f in files)
        template = self.defaults.get(stage)
        if template is None:
            return None
        return template.format(j=f" -j {self.jobs}" if self.jobs else "")

    def diagnostics(self, output: str) -> list[Diagnostic]:
        return parse_ocaml(output)

    def test_summary(self, output: str) -> dict[str, int] | None:
        return alcotest_summary(output)

    @staticmethod
    def detect(tree: Path) -> bool:
        return is_dune_project(tree)


@ADAPTERS.register("generic")
class GenericAdapter:
    name = "generic"

    def command(self, stage: str, touched: Sequence[str], overrides: dict[str, str]) -> str | None:
        return overrides.get(stage) or None

    def diagnostics(self, output: str) -> list[Diagnostic]:
        return parse_ocaml(output)

    def test_summary(self, output: str) -> dict[str, int] | None:
        return alcotest_summary(output)

    @staticmethod
    def detect(tree: Path) -> bool:
        return True


def get_adapter(name: str, tree: Path, *, jobs: int | None = None) -> Adapter:
    """The adapter ``name`` ("auto": dune when ``tree`` has a ``dune-project``); ``jobs`` is the
    build tool's parallelism where the adapter has one."""
    if name == "auto":
        name = "dune" if DuneAdapter.detect(tree) else "generic"
    cls = ADAPTERS.get(name)
    adapter: Adapter = cls(jobs) if cls is DuneAdapter else cls()
    return adapter
