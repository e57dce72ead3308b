"""One dune run for the ``typecheck`` and ``build`` stages of a job (issue 9, "a faster warm
loop"): ``dune build @check @@default`` loads and scans the project once where two runs did
it twice. Verdicts stay exactly the staged ones (``[ces] fuse_stages``, on by default):

- the fused run passes *cleanly* (exit 0, no output, no flag) → both stages passed: building
  the two stages' targets together succeeds with nothing to say only if building each alone
  does; its time is reported on ``build``, ``typecheck`` shows 0 s and the same command;
- anything else (it fails, prints, times out, is killed) → the worker throws the job's layer
  away and judges the whole job again, staged, on a fresh layer
  (:meth:`bactrian.ces.worker.Worker._judge_layered`), so nothing the fused run's rules
  wrote reaches the verdict, and its output and diagnostics are exactly a staged job's.

The cost of a job that fails typecheck or build is then one extra (incremental) dune run;
a job that passes both saves one dune start-up and project scan. The dune adapter's own
commands fuse, and so do stage overrides that are both plain ``dune build OPTIONS TARGETS
2>&1`` commands with the same options (``--stage typecheck='dune build --root . @lib/check
2>&1' --stage build='dune build --root . @lib/all 2>&1'``); any other override runs as given.
Jobs with a whole-job ``timeout_s`` run the stages one by one (a fused run that used up the
job's time would leave no stage to name as the one that ran out). Not exact for dune rules
whose result depends on which other targets were built first (undeclared dependencies).
"""

from __future__ import annotations

import shlex

from bactrian.ces.adapters import Adapter

FUSED_STAGES = ("typecheck", "build")
_SHELL = set(";&|<>`$(){}*?!\\\n")


def _split(cmd: str) -> tuple[list[str], list[str]] | None:
    """``dune build OPTIONS… TARGETS… 2>&1`` as (options, targets), else None."""
    try:
        words = shlex.split(cmd)
    except ValueError:
        return None
    if len(words) < 3 or words[:2] != ["dune", "build"] or words[-1] != "2>&1":
        return None
    words = words[2:-1]
    if any(_SHELL & set(w) for w in words):
        return None
    n = len(words)
    while n > 0 and words[n - 1].startswith("@") and not words[n - 1].startswith("@@-"):
        n -= 1
    opts, targets = words[:n], words[n:]
    if any(
        not w.startswith("-") and (i == 0 or not opts[i - 1].startswith("-"))
        for i, w in enumerate(opts)
    ):
        return None  # a bare word that is no option's value: a file target, not fused
    return opts, targets or ["@@default"]


def _fuse_overrides(typecheck: str, build: str) -> str | None:
    a, b = _split(typecheck), _split(build)
    if a is None or b is None or a[0] != b[0]:
        return None
    targets = a[1] + [t for t in b[1] if t not in a[1]]
    return shlex.join(["dune", "build", *a[0], *targets]) + " 2>&1"


def fused_command(adapter: Adapter, overrides: dict[str, str]) -> str | None:
    """The one command that builds both stages' targets, or None when they cannot be fused."""
    if adapter.name != "dune":
        return None
    given = [s for s in FUSED_STAGES if s in overrides]
    if given:
        if len(given) != 2 or not all(overrides[s] for s in FUSED_STAGES):
            return None
        return _fuse_overrides(overrides["typecheck"], overrides["build"])
    jobs = getattr(adapter, "jobs", None)
    j = f" -j {jobs}" if jobs else ""
    return f"dune build{j} --root . @check @@default 2>&1"
