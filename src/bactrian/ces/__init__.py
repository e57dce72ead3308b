"""Code Evaluation Service: pre-warmed builds judge diffs stage by stage, sandboxed.

- :mod:`bactrian.ces.contract` — the contract: ``BaseSpec``, ``Job``, ``StageResult``, ``Verdict``,
  the ``CESBackend`` protocol and the ``BACKENDS`` registry.
- :mod:`bactrian.ces.config` — ``CESConfig`` (``[ces]``): workers, limits, timeouts, rewards.
- :mod:`bactrian.ces.api` — ``evaluate``, ``evaluate_async``, ``reward_function``.
- :mod:`bactrian.ces.worker` — ``Worker``: one warm tree, judge + reset + verify.
- :mod:`bactrian.ces.local` — the ``local`` backend (thread pool over workers, LRU bases).
- :mod:`bactrian.ces.sandbox` — ``bwrap`` / ``none`` sandboxes; :mod:`bactrian.ces.adapters`
  — ``dune`` / ``generic`` stage commands; :mod:`bactrian.ces.tree` — export, hash, reset.
- :mod:`bactrian.ces.service` (+ :mod:`bactrian.ces.client`), :mod:`bactrian.ces.ray_backend`, :mod:`bactrian.ces.metrics` — the
  HTTP service, the ``ray`` backend and Prometheus metrics.
"""
