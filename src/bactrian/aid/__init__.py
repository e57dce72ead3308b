"""AID, the editor sidecar (home of the coming sidecar part): JSON-RPC over a Unix socket,
context and prompt construction, model calls, A/B arms and metrics. Depends on
:mod:`bactrian.models`, :mod:`bactrian.buildstatus` and :mod:`bactrian.diffs`; imports none of
Ray, datasets, pyarrow, torch or FastAPI."""
