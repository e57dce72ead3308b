"""Build probes (one Protocol, named implementations) and compiler diagnostics parsers.

from bactrian.buildstatus import choose_probe, parse_ocaml, classify
probe = choose_probe(workspace)            # dune / command / dune-watch / none
result = probe.run(workspace, tree_id)     # BuildResult: state, diagnostics, log, …
"""

from bactrian.buildstatus.diagnostics import PARSERS, classify, parse_diagnostics, parse_ocaml
from bactrian.buildstatus.probe import (
    PROBES,
    BuildConfig,
    BuildProbe,
    CommandProbe,
    DuneProbe,
    NoneProbe,
    choose_probe,
)

__all__ = [
    "PARSERS",
    "PROBES",
    "BuildConfig",
    "BuildProbe",
    "CommandProbe",
    "DuneProbe",
    "NoneProbe",
    "choose_probe",
    "classify",
    "parse_diagnostics",
    "parse_ocaml",
]
