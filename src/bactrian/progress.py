"""Progress bars for long steps (mining a VCS range, describing, labelling, building a
dataset), through tqdm, on stderr — so ``--json`` output on stdout stays clean.

Shown when stderr is a terminal; ``BACTRIAN_PROGRESS=1`` forces them on (e.g. under a CI log),
``BACTRIAN_PROGRESS=0`` off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def enabled() -> bool:
    flag = os.environ.get("BACTRIAN_PROGRESS", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return sys.stderr.isatty()


def _bar(desc: str, unit: str, total: int | None, items: Iterable[T] | None = None) -> tqdm:
    """One bar, styled the same everywhere: on stderr, kept when done, redrawn at most 5 times
    a second."""
    return tqdm(
        items,
        desc=desc,
        unit=unit,
        total=total,
        file=sys.stderr,
        leave=True,
        dynamic_ncols=True,
        mininterval=0.2,
    )


def progress(
    items: Iterable[T], desc: str, unit: str = "it", total: int | None = None
) -> Iterator[T]:
    """Iterate ``items``, with a progress bar named ``desc`` counting ``unit``s when enabled."""
    if not enabled():
        yield from items
        return

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with _bar(desc, unit, total, items) as bar:
        yield from bar


class Bar:
    """A bar updated by hand (``step()``), for work that reports through a callback (a replay
    calls back once per snapshot). A no-op when progress bars are off."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it") -> None:
        self._bar = _bar(desc, unit, total) if enabled() else None

    def step(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
