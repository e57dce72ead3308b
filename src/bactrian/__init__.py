"""bactrian: build custom code models from developers' everyday work, and put them back into
their editors.

Parts (one subpackage each): ``snapshot`` (workspace timelines), ``build`` (build probes and
compiler diagnostics), ``diffs`` (multi-file diffs), ``mine`` (examples and datasets), ``ces``
(Code Evaluation Service), ``models`` (model backends), ``sample`` (the bundled OCaml workspace).
"""

__version__ = "0.1.0"
