"""The docs tell the truth: every fenced shell block (```sh, ```bash, ```shell, ```console) of
README.md and of each docs/*.md page is run, in order, one shell per page, in a fresh
temporary directory with its own bactrian data and config dirs and ``bactrian`` on PATH.

A block that cannot run in a test carries the marker ``<!-- doc-test: skip REASON -->`` on
the line just before its fence; it is listed as skipped (with its reason) in pytest's
warnings summary of every run — visibly, never a pytest skip. The convention is documented in docs/architecture.md
("Docs are tested")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.models.modelcache import MODEL_CACHE

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
SKIP = re.compile(r"^\s*<!--\s*doc-test:\s*skip\b\s*(.*?)\s*-->\s*$")
PAGE_TIMEOUT_S = 900


class DocBlockSkipped(UserWarning):
    """A doc block marked ``<!-- doc-test: skip REASON -->``: shown in the warnings summary."""


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the reason, when marked

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced shell blocks of ``page`` (with the skip marker before them, if any)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence[0] * len(fence)):
            j += 1
        if lang in SHELL:
            prev = lines[i - 1] if i > 0 else ""
            marker = SKIP.match(prev)
            code = "\n".join(lines[i + 1 : j])
            if lang == "console":  # prompts: only the lines after "$ " are commands
                code = "\n".join(x[2:] for x in code.splitlines() if x.startswith("$ "))
            reason = (marker.group(1) or "marked skip") if marker else None
            out.append(Block(page, i + 1, lang, code, reason))
        i = j + 1
    return out


def test_marker_and_fence_parsing(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "intro\n\n```sh\necho one\n```\n\n<!-- doc-test: skip needs a GPU -->\n```bash\n"
        "train --gpu\n```\n\n```text\nnot run\n```\n\n```console\n$ echo two\ntwo\n```\n"
    )
    got = blocks(page)
    assert [(b.lang, b.code, b.skip) for b in got] == [
        ("sh", "echo one", None),
        ("bash", "train --gpu", "needs a GPU"),
        ("console", "echo two", None),
    ]


def _env(home: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BACTRIAN_") and k not in ("XDG_CONFIG_HOME", "XDG_DATA_HOME")
    }
    env.update(
        PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(home),
        BACTRIAN_DATA_DIR=str(home / "data"),
        BACTRIAN_MODEL_CACHE=str(MODEL_CACHE),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "xdg-data"),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(ROOT / "src"),
        BACTRIAN_PROGRESS="0",
    )
    return env


def _script(page_blocks: list[Block]) -> str:
    parts = ["set -euo pipefail"]
    for b in page_blocks:
        parts.append(f"echo '>>> doc block {b.where()}'")
        parts.append(b.code)
    return "\n".join(parts) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_shell_blocks_of_the_page_run(page: Path, tmp_path: Path) -> None:
    found = blocks(page)
    for b in found:
        if b.skip:
            # listed in pytest's "warnings summary" of every run: visible, never a silent pass
            warnings.warn(f"doc-test skipped {b.where()}: {b.skip}", DocBlockSkipped, stacklevel=1)
    runnable = [b for b in found if not b.skip]
    if not runnable:
        return
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "home").mkdir()
    proc = subprocess.run(
        ["bash", "-c", _script(runnable)],
        cwd=work,
        env=_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT_S,
    )
    output = proc.stdout + proc.stderr
    last = [x for x in proc.stdout.splitlines() if x.startswith(">>> doc block ")]
    where = last[-1][len(">>> doc block ") :] if last else page.name
    assert proc.returncode == 0, (
        f"a command of {where} failed ({proc.returncode}):\n{output[-6000:]}"
    )
    assert "Traceback (most recent call last)" not in output, output[-6000:]
