"""The sample OCaml workspace shipped inside the package (``tally``, a tiny double-entry
ledger: a library of seven modules with interfaces, a command-line tool, alcotest tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bactrian.errors import WorkspaceError

_SKIP = shutil.ignore_patterns("_build", "__pycache__", "*.pyc")


def workspace_path() -> Path:
    """The shipped dune project. Read-only: copy it with :func:`copy_workspace` to build it."""
    return Path(__file__).resolve().parent / "workspace"


def read_tree(root: Path) -> dict[str, str]:
    """Every text file under ``root`` (relative POSIX path → content), ``_build`` excluded."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if "_build" in rel.parts or not path.is_file():
            continue
        out[rel.as_posix()] = path.read_text(encoding="utf-8")
    return out


def copy_workspace(dest: Path) -> Path:
    """Copy the sample workspace to ``dest``, which must not exist or be an empty directory.

    Returns ``dest``. Raises :class:`WorkspaceError` when ``dest`` is a file or not empty.
    """
    dest = Path(dest)
    if dest.exists():
        if not dest.is_dir():
            raise WorkspaceError(
                f"Cannot copy the sample to {dest}: it is a file. Pick a new path."
            )
        if any(dest.iterdir()):
            raise WorkspaceError(
                f"Cannot copy the sample to {dest}: the directory is not empty. Pick a new or "
                "empty directory (bactrian never overwrites files it did not create)."
            )
        dest.rmdir()
    src = workspace_path()
    if not (src / "dune-project").is_file():
        raise WorkspaceError(
            f"The sample workspace is missing from the installed package ({src}). "
            "Reinstall bactrian."
        )
    try:
        shutil.copytree(src, dest, ignore=_SKIP)
    except OSError as exc:
        raise WorkspaceError(f"Cannot copy the sample to {dest}: {exc}.") from exc
    return dest
