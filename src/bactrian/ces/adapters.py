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

from bactrian.registry import Registry
from bactrian.types import Diagnostic, Severity


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


_LOC = re.compile(
    r'^File "(?P<file>[^"]+)", lines? (?P<line>\d+)(?:-(?P<end_line>\d+))?'
    r"(?:, characters (?P<col>-?\d+)-(?P<end_col>-?\d+))?:\s*$"
)
_HEAD = re.compile(r"^(?P<sev>Error|Warning|Alert)(?: (?P<code>[^:]+))?:\s?(?P<msg>.*)$")


def _fallback_parse(text: str) -> list[Diagnostic]:
    """A small OCaml diagnostics reader, used when ``bactrian.build.diagnostics`` is absent."""
    out: list[Diagnostic] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _LOC.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not _HEAD.match(lines[j]) and not _LOC.match(lines[j]):
            j += 1
        if j >= len(lines) or _LOC.match(lines[j]):
            i = j
            continue
        h = _HEAD.match(lines[j])
        assert h is not None
        msg = [h.group("msg")]
        k = j + 1
        while k < len(lines) and lines[k].startswith((" ", "\t")) and not _LOC.match(lines[k]):
            msg.append(lines[k].strip())
            k += 1
        message = "\n".join(x for x in msg if x)
        sev = {"Error": Severity.ERROR, "Warning": Severity.WARNING}.get(
            h.group("sev"), Severity.ALERT
        )
        low = message.lower()
        if sev is Severity.WARNING:
            kind = "warning"
        elif "syntax error" in low or low.startswith("illegal character"):
            kind = "syntax"
        elif low.startswith("unbound"):
            kind = "unbound"
        elif "type" in low:
            kind = "type"
        else:
            kind = "other"
        line = int(m.group("line"))
        out.append(
            Diagnostic(
                file=m.group("file"),
                line=line,
                col=int(m.group("col") or 0),
                end_line=int(m.group("end_line") or line),
                end_col=int(m.group("end_col") or 0),
                severity=sev,
                message=message,
                kind=kind,
                code=(h.group("code") or None),
            )
        )
        i = k
    return out


def parse_ocaml(text: str) -> list[Diagnostic]:
    """OCaml diagnostics, from ``bactrian.build.diagnostics`` when it is installed."""
    try:
        from bactrian.build.diagnostics import parse_ocaml as build_parse
    except ImportError:
        return _fallback_parse(text)
    result: list[Diagnostic] = build_parse(text)
    return result


@ADAPTERS.register("dune")
class DuneAdapter:
    name = "dune"
    defaults = {
        "typecheck": "dune build --root . @check 2>&1",
        "build": "dune build --root . 2>&1",
        "test": "dune runtest --root . --force 2>&1",
    }

    def command(self, stage: str, touched: Sequence[str], overrides: dict[str, str]) -> str | None:
        if stage in overrides:
            return overrides[stage] or None
        if stage == "parse":
            files = sorted(p for p in touched if p.endswith((".ml", ".mli")))
            if not files:
                return None
            return "ocamlc -stop-after parsing -c " + " ".join(shlex.quote(f) for f in files)
        return self.defaults.get(stage)

    def diagnostics(self, output: str) -> list[Diagnostic]:
        return parse_ocaml(output)

    def test_summary(self, output: str) -> dict[str, int] | None:
        return alcotest_summary(output)

    @staticmethod
    def detect(tree: Path) -> bool:
        return (tree / "dune-project").is_file()


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


def get_adapter(name: str, tree: Path) -> Adapter:
    if name == "auto":
        name = "dune" if DuneAdapter.detect(tree) else "generic"
    adapter: Adapter = ADAPTERS.get(name)()
    return adapter
