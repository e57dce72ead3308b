"""Held-out evaluation (home of the coming evaluation part): k samples per example from a model
backend, each judged by the CES; rates per stage, pass@k, latency, paired comparisons.
Depends on :mod:`bactrian.models`, :mod:`bactrian.dataset` and :mod:`bactrian.ces`."""
