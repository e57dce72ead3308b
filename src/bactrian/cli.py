"""The ``bactrian`` command: one group, a subcommand group per part, loaded lazily so that
``bactrian --help`` and small commands start fast. Each subcommand lives in its part's
``cli.py`` as a thin adapter over library functions.

Errors: library code raises :class:`bactrian.errors.BactrianError`; it becomes a one-line
``Error: …`` and exit status 1 here, at the edge.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

import click

from bactrian import __version__
from bactrian.errors import BactrianError

# name -> (module, attribute, short help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "snapshot": ("bactrian.snapshot.cli", "group", "Record workspace snapshots and build status."),
    "sample": ("bactrian.sample.cli", "group", "The bundled OCaml sample workspace and session."),
    "build": ("bactrian.buildstatus.cli", "group", "Build probes and compiler diagnostics."),
    "diffs": ("bactrian.diffs.cli", "group", "Check and apply multi-file diffs."),
    "mine": ("bactrian.mine.cli", "mine", "Mine examples from snapshot timelines or VCS history."),
    "describe": ("bactrian.mine.cli", "describe", "Describe mined diffs as editor prompts."),
    "dataset": ("bactrian.dataset.cli", "dataset", "Build, inspect and export datasets."),
    "ces": ("bactrian.ces.cli", "group", "Code Evaluation Service: judge diffs stage by stage."),
    "models": ("bactrian.models.cli", "group", "Named model backends: list, show, try, serve."),
    "eval": (
        "bactrian.evaluate.cli",
        "group",
        "Evaluate models on held-out examples with the CES.",
    ),
    "train": (
        "bactrian.train.cli",
        "group",
        "Fine-tune models: SFT, then RL (GRPO) with the CES as the reward.",
    ),
    "aid": ("bactrian.aid.cli", "group", "The editor sidecar: serve, status, restart, report."),
    "demo": ("bactrian.demo", "demo", "Run the main job on the bundled sample."),
    "doctor": ("bactrian.doctor", "doctor", "Why a build is red, and a build scope that works."),
    "quickstart": (
        "bactrian.quickstart",
        "quickstart",
        "The whole loop on your own dune repository (git or Mercurial).",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use and whose errors are converted."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        cmd = getattr(importlib.import_module(module), attr)
        if not isinstance(cmd, click.Command):
            raise TypeError(f"{module}.{attr} is not a click command")
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BactrianError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bactrian")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """bactrian: custom code models from your developers' everyday work."""
    level = logging.WARNING - 10 * verbose
    if os.environ.get("BACTRIAN_LOG_LEVEL"):
        level = logging.getLevelName(os.environ["BACTRIAN_LOG_LEVEL"].upper())
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")


def main() -> None:
    cli(prog_name="bactrian")


if __name__ == "__main__":
    main()
