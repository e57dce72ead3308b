"""The CES as a Python call: judge diffs against a base, or use it as an RL reward.

    from bactrian.ces.api import evaluate, reward_function
    verdicts = evaluate("path/to/project", [diff1, diff2])          # warm once, judge both
    reward = reward_function("path/to/project")                      # TRL-style reward
    reward(completions=["```diff\\n...```"])                         # -> [0.7]

Backends are kept per (name, work dir) for the life of the process, so repeated calls reuse
their warm trees; :func:`shutdown` closes them. ``backend=None`` (the default) is ``http`` — a
running ``bactrian ces serve`` — when ``[ces] url`` is set, else ``local``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from bactrian.ces.backends import BACKENDS
from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, CESBackend, Job, Verdict
from bactrian.diffs import extract_changes
from bactrian.errors import DiffError

_SHARED: dict[tuple[str, str], CESBackend] = {}
_SHARED_LOCK = threading.Lock()


def backend_name(name: str | None, config: CESConfig) -> str:
    """``name``, or for None: ``http`` when ``[ces] url`` is set, else ``local``."""
    return name or ("http" if config.url else "local")


def get_backend(name: str | None = None, config: CESConfig | None = None) -> CESBackend:
    """The process-wide backend ``name`` for ``config``'s work dir (created on first use)."""
    config = config or CESConfig.load()
    name = backend_name(name, config)
    key = (name, config.url if name == "http" else str(config.resolved_work_dir()))
    with _SHARED_LOCK:
        backend = _SHARED.get(key)
        if backend is None:
            backend = BACKENDS.get(name)(config)
            _SHARED[key] = backend
        return backend


def shutdown() -> None:
    """Close every shared backend (their trees stay on disk for reuse)."""
    with _SHARED_LOCK:
        for backend in _SHARED.values():
            backend.close()
        _SHARED.clear()


def _spec(
    base: BaseSpec | str | os.PathLike[str], rev: str | None, stages: dict[str, str] | None
) -> BaseSpec:
    spec = BaseSpec.coerce(base, rev)
    if stages:
        spec = BaseSpec.from_dict({**spec.to_dict(), "stages": {**spec.stages, **stages}})
    return spec


def evaluate(
    base: BaseSpec | str | os.PathLike[str],
    diffs: Sequence[str],
    *,
    rev: str | None = None,
    stages: dict[str, str] | None = None,
    backend: str | None = None,
    workers: int | None = None,
    allow_lenient: bool = False,
    timeout_s: float | None = None,
    config: CESConfig | None = None,
    edits_tests_policy: str | None = None,
) -> list[Verdict]:
    """Judge each diff against ``base``; one verdict per diff, in order. ``edits_tests_policy``
    overrides ``[ces] edits_tests_policy`` for these diffs.

    Raises :class:`bactrian.errors.BaseNotGreenError` if the base itself is not green."""
    spec = _spec(base, rev, stages)
    be = get_backend(backend, config)
    if workers:
        be.warm(spec, workers)
    jobs = [
        Job(
            base=spec,
            diff=d,
            allow_lenient=allow_lenient,
            timeout_s=timeout_s,
            edits_tests_policy=edits_tests_policy,
        )
        for d in diffs
    ]
    return be.evaluate(jobs)


async def evaluate_async(
    base: BaseSpec | str | os.PathLike[str], diffs: Sequence[str], **kwargs: Any
) -> list[Verdict]:
    """:func:`evaluate` without blocking the event loop (runs in a thread)."""
    return await asyncio.to_thread(evaluate, base, list(diffs), **kwargs)


def completion_to_diff(completion: Any) -> str:
    """A model completion (text, or chat messages) → the diff it proposes, through
    :func:`bactrian.diffs.extract_changes` (fenced or bare unified diffs, search/replace
    blocks). Text that holds no readable edit is passed on as it is, so the ``apply`` stage
    reports why it is not a diff."""
    if isinstance(completion, list):  # chat format: [{"role": ..., "content": ...}, ...]
        completion = "".join(
            m.get("content", "")
            for m in completion
            if isinstance(m, dict) and m.get("role") != "user"
        )
    text = str(completion)
    try:
        changes = extract_changes(text)
    except DiffError:
        return text
    return changes.render() if changes else text


def reward_function(
    base: BaseSpec | str | os.PathLike[str],
    *,
    rev: str | None = None,
    stages: dict[str, str] | None = None,
    backend: str | None = None,
    workers: int | None = None,
    allow_lenient: bool = False,
    config: CESConfig | None = None,
    on_verdicts: Callable[[list[Verdict]], None] | None = None,
    edits_tests_policy: str | None = None,
) -> Callable[..., list[float | None]]:
    """A TRL-style reward function ``reward(completions, **kwargs) -> list[float | None]``.

    Each completion is turned into a diff and judged against ``base``; the reward is the
    verdict's reward (graded or binary per config), or ``None`` for an ``error`` verdict (the
    machine failed, not the diff: TRL leaves such samples out). The base is warmed on creation."""
    spec = _spec(base, rev, stages)
    be = get_backend(backend, config)
    be.warm(spec, workers)

    def reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        jobs = [
            Job(
                base=spec,
                diff=completion_to_diff(c),
                allow_lenient=allow_lenient,
                edits_tests_policy=edits_tests_policy,
            )
            for c in completions
        ]
        verdicts = be.evaluate(jobs)
        if on_verdicts is not None:
            on_verdicts(verdicts)
        return [v.reward for v in verdicts]

    reward.__name__ = "ces_reward"
    return reward


__all__ = [
    "evaluate",
    "evaluate_async",
    "get_backend",
    "reward_function",
    "shutdown",
    "completion_to_diff",
]
