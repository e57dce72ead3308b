"""One dune run for the ``typecheck`` and ``build`` stages of a job (issue 9, "a faster warm
loop"): ``dune build @check @@default`` loads and scans the project once where two runs did
it twice. Verdicts stay exact per stage:

- the fused run passes → both stages passed (building ``@check`` and the default targets
  together succeeds only if each does); its time is reported on ``build``, ``typecheck`` shows
  0 s and the same command;
- it fails, times out or is killed → its result is dropped and the stages run one by one as
  before (incremental: what the fused run built is not built again), so the verdict, output
  and diagnostics are exactly the staged ones.

Only for the ``dune`` adapter with its own commands for both stages (a base that overrides
either runs them as given), for jobs without a whole-job ``timeout_s`` (a fused run that used
up the job's time would leave the staged rerun none, and no stage could be named as the one
that ran out), and only when ``[ces] fuse_stages`` is on (off by default: a failed fused run leaves what its
rules wrote in the job's layer for the staged reruns).
"""

from __future__ import annotations

from bactrian.ces.adapters import Adapter

FUSED_STAGES = ("typecheck", "build")


def fused_command(adapter: Adapter, overrides: dict[str, str]) -> str | None:
    """The one command that builds both stages' targets, or None when they cannot be fused."""
    if adapter.name != "dune" or any(s in overrides for s in FUSED_STAGES):
        return None
    jobs = getattr(adapter, "jobs", None)
    j = f" -j {jobs}" if jobs else ""
    return f"dune build{j} --root . @check @@default 2>&1"
