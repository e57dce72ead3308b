"""Code Evaluation Service: pre-warmed builds judge diffs stage by stage, sandboxed.

- :mod:`bactrian.ces.contract` — the contract: ``BaseSpec``, ``Job``, ``StageResult``, ``Verdict``,
  the ``CESBackend`` protocol and the ``BACKENDS`` registry.
- :mod:`bactrian.ces.config` — ``CESConfig`` (``[ces]``): workers, limits, timeouts, rewards.
- :mod:`bactrian.ces.api` — ``evaluate``, ``evaluate_async``, ``reward_function``.
- :mod:`bactrian.ces.worker` — ``Worker``: one warm tree, judge + reset + verify.
- :mod:`bactrian.ces.local` — the ``local`` backend (thread pool over workers, LRU bases).
- :mod:`bactrian.ces.sandbox` — ``bwrap`` / ``none`` sandboxes; :mod:`bactrian.ces.adapters`
  — ``dune`` / ``generic`` stage commands; :mod:`bactrian.ces.tree` — export, hash, reset.
- :mod:`bactrian.ces.service` (the HTTP service, ``bactrian ces serve``),
  :mod:`bactrian.ces.client` (its client, the ``http`` backend), :mod:`bactrian.ces.ray_backend`
  (the ``ray`` backend), :mod:`bactrian.ces.metrics` (Prometheus); :mod:`bactrian.ces.fused`
  (typecheck + build in one dune run).
"""
