"""Language adapters: the command of each stage, and how to read its output.

``dune`` (OCaml): parse = what the compiler parses, for the touched files only (milliseconds, no
build): plain ``.ml``/``.mli`` through ``ocamlc -stop-after parsing``; files with a ``(preprocess
(action …))`` (cppo and the like) through that command first; ``.mll`` through ``ocamllex`` and
``.mly`` through ``menhir``/``ocamlyacc`` where their stanza names them; ``(pps …)`` files (a ppx
needs the build) and ``.mly`` files when menhir is not installed are *deferred* to
``typecheck`` and the parse output says so. typecheck = ``dune build @check``, build = ``dune
build``, test = ``dune runtest``; a syntax error that only ``dune build @check`` sees still
counts as a parse failure. The stanzas come from :mod:`bactrian.ces.stanzas`, read when the
worker warms. ``generic``: every command comes from the base's ``stages`` (an empty or missing
command skips the stage).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bactrian.buildstatus.diagnostics import parse_ocaml as build_parse_ocaml
from bactrian.buildstatus.workspace import is_dune_project
from bactrian.ces.stanzas import Sexp, Stanzas
from bactrian.registry import Registry
from bactrian.types import Diagnostic


class Adapter(Protocol):
    name: str

    def command(self, stage: str, touched: Sequence[str], overrides: dict[str, str]) -> str | None:
        """The shell command of ``stage`` (None or "" = skip), run at the tree root."""
        ...

    def diagnostics(self, output: str) -> list[Diagnostic]: ...

    def test_summary(self, output: str) -> dict[str, int] | None: ...


@dataclass(frozen=True)
class AdapterConfig:
    """What an adapter factory gets: ``jobs`` is the build tool's parallelism (None: its
    default)."""

    jobs: int | None = None


AdapterFactory = Callable[[AdapterConfig], Adapter]
ADAPTERS: Registry[AdapterFactory] = Registry("CES adapter")

_OCAMLC = "ocamlc -stop-after parsing -c"


def _action_argv(action: list[Sexp], path: str) -> str | None:
    """A shell command for a dune ``(preprocess (action (run PROG ARGS…)))`` on ``path``
    (dune runs it with the output on stdout), or None when it uses what only dune can expand."""
    if len(action) != 1 or not isinstance(action[0], list) or not action[0]:
        return None
    form = action[0]
    if form[0] != "run" or not all(isinstance(a, str) for a in form[1:]):
        return None
    argv: list[str] = []
    for a in form[1:]:
        assert isinstance(a, str)
        if a == "%{input-file}":
            argv.append(path)
        elif a.startswith("%{bin:") and a.endswith("}"):
            argv.append(a[len("%{bin:") : -1])
        elif a.startswith("%{ocaml_version}") or a == "%{ocaml_version}":
            argv.append(_ocaml_version())
        elif "%{" in a:
            return None
        else:
            argv.append(a)
    if not argv or shutil.which(argv[0]) is None:
        return None
    return " ".join(shlex.quote(a) for a in argv)


def _ocaml_version() -> str:

    try:
        return subprocess.run(
            ["ocamlc", "-version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


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
        self.stanzas: Stanzas | None = None  # set by the worker when it warms

    def _j(self) -> str:
        return f" -j {self.jobs}" if self.jobs else ""

    def command(self, stage: str, touched: Sequence[str], overrides: dict[str, str]) -> str | None:
        if stage in overrides:
            return overrides[stage] or None
        if stage == "parse":
            cmd, notes = self.parse_plan(touched)
            if notes:
                echo = "printf '%s\\n' " + " ".join(shlex.quote(n) for n in notes)
                return f"{echo}; {cmd}" if cmd else echo
            return cmd
        template = self.defaults.get(stage)
        if template is None:
            return None
        return template.format(j=self._j())

    def suite_command(self, dirs: Sequence[str]) -> str:
        """Run the test suites of ``dirs`` (and only those), forced."""
        aliases = " ".join(shlex.quote(f"@@{d}/runtest" if d else "@@runtest") for d in dirs)
        return f"dune build{self._j()} --root . --force {aliases} 2>&1"

    def parse_plan(self, touched: Sequence[str]) -> tuple[str | None, list[str]]:
        """The parse command for ``touched`` and the notes on files it defers to typecheck."""
        plain: list[str] = []
        steps: list[str] = []
        notes: list[str] = []
        st = self.stanzas
        for i, f in enumerate(sorted(touched)):
            q = shlex.quote(f)
            name = f.rsplit("/", 1)[-1]
            out = f'"$T"/{i}/{shlex.quote(name)}'
            if f.endswith((".ml", ".mli")):
                pp = st.preprocess_of(f) if st else None
                if pp is None:
                    plain.append(q)
                    continue
                run = _action_argv(pp.command, f) if pp.kind == "action" else None
                if run is None:
                    why = "a ppx" if pp.kind == "pps" else "a preprocessor the CES cannot run alone"
                    notes.append(f"[bactrian: {f} is preprocessed by {why}: parsed at typecheck]")
                    continue
                steps.append(f'mkdir -p "$T"/{i} && {run} > {out} && {_OCAMLC} {out}')
            elif f.endswith(".mll") and st and st.generator_of(f) == "ocamllex":
                ml = f'"$T"/{i}/' + shlex.quote(name[: -len(".mll")] + ".ml")
                steps.append(f'mkdir -p "$T"/{i} && ocamllex -q -o {ml} {q} && {_OCAMLC} {ml}')
            elif f.endswith(".mly") and st and st.generator_of(f) in ("menhir", "ocamlyacc"):
                gen = st.generator_of(f)
                if gen == "menhir" and shutil.which("menhir") is None:
                    notes.append(
                        f"[bactrian: menhir is not installed here: {f} is parsed at typecheck]"
                    )
                    continue
                if gen == "menhir":
                    steps.append(f"menhir --only-preprocess {q} > /dev/null")
                else:
                    stem = f'"$T"/{i}/' + shlex.quote(name[: -len(".mly")])
                    steps.append(f'mkdir -p "$T"/{i} && ocamlyacc -b {stem} {q}')
        if plain:
            steps.insert(0, f"{_OCAMLC} " + " ".join(plain))
        if not steps:
            return None, notes
        if any('"$T"' in s for s in steps):
            return "T=$(mktemp -d) && " + " && ".join(steps) + '; r=$?; rm -rf "$T"; exit $r', notes
        return " && ".join(steps), notes

    def diagnostics(self, output: str) -> list[Diagnostic]:
        return parse_ocaml(output)

    def test_summary(self, output: str) -> dict[str, int] | None:
        return alcotest_summary(output)

    @staticmethod
    def detect(tree: Path) -> bool:
        return is_dune_project(tree)


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


ADAPTERS.add("dune", lambda config: DuneAdapter(config.jobs))
ADAPTERS.add("generic", lambda config: GenericAdapter())


def get_adapter(name: str, tree: Path, *, jobs: int | None = None) -> Adapter:
    """The adapter ``name`` ("auto": dune when ``tree`` has a ``dune-project``); ``jobs`` is the
    build tool's parallelism where the adapter has one."""
    if name == "auto":
        name = "dune" if DuneAdapter.detect(tree) else "generic"
    return ADAPTERS.get(name)(AdapterConfig(jobs=jobs))
