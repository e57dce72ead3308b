"""bactrian: build custom code models from developers' everyday work, and put them back into
their editors.

Parts (one subpackage each): ``snapshot`` (workspace timelines), ``buildstatus`` (build probes
and compiler diagnostics), ``diffs`` (multi-file diffs), ``mine`` (examples from timelines and
VCS history), ``dataset`` (example schema, store, splits, export), ``ces`` (Code Evaluation
Service), ``models`` (model backends), ``sample`` (the bundled OCaml workspace); homes for
``evaluate``, ``train`` and ``aid``. Their layers and seams: ``docs/architecture.md``.
"""

__version__ = "0.1.0"
