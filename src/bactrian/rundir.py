"""Output directories of whole runs (``bactrian demo``, ``bactrian quickstart``): created
empty, wiped only when an earlier run of the same command wrote them (a marker file says so),
and a private bactrian data directory inside them for the run's stores and CES trees."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bactrian.errors import WorkspaceError
from bactrian.models.smollm2 import model_cache


def prepare_out(out: Path, what: str, *, refuse_inside: Path | None = None) -> Path:
    """``out`` made empty for a run of ``bactrian what``: wiped only when an earlier run of
    ``what`` wrote it; never inside ``refuse_inside`` (a user's repository)."""
    out = Path(out).expanduser().resolve()
    marker = f".bactrian-{what}"
    if refuse_inside is not None:
        inside = Path(refuse_inside).expanduser().resolve()
        if out == inside or out.is_relative_to(inside):
            raise WorkspaceError(
                f"--out {out} lies inside {inside}; bactrian never writes inside your "
                "repository. Give an output directory elsewhere."
            )
    if out.exists() and not out.is_dir():
        raise WorkspaceError(f"--out {out} is a file; give a directory.")
    if out.exists() and any(out.iterdir()):
        if not (out / marker).exists():
            raise WorkspaceError(
                f"{out} exists and is not an earlier {what} output; the {what} wipes its "
                "output directory, so give it a new or empty one with --out."
            )
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(
            f"--out {out}: cannot create the {what}'s output directory "
            f"({exc.strerror or exc}); give a directory that can be created."
        ) from None
    (out / marker).write_text(f"written by `bactrian {what}`; wiped by the next run\n")
    return out


@contextmanager
def isolated_data_dir(data: Path) -> Iterator[None]:
    """Point ``BACTRIAN_DATA_DIR`` at ``data`` for the duration, keeping the model cache where
    it was (a converted checkpoint is half a gigabyte: convert it once per machine)."""
    saved = {k: os.environ.get(k) for k in ("BACTRIAN_DATA_DIR", "BACTRIAN_MODEL_CACHE")}
    os.environ["BACTRIAN_MODEL_CACHE"] = str(model_cache())
    os.environ["BACTRIAN_DATA_DIR"] = str(data)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def shared_threads() -> int:
    """CPU threads for a local model in a run that builds at the same time (the CES judges
    one sample while the model writes the next): half the cores, at least one."""
    return max(1, (os.cpu_count() or 2) // 2)
