"""``bactrian ces``: warm a base, judge diffs, show status. Thin adapters over
:mod:`bactrian.ces.api` and the backends."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from bactrian.ces.config import CESConfig
from bactrian.ces.contract import BaseSpec, Verdict
from bactrian.errors import ConfigError


def _stages(pairs: tuple[str, ...]) -> dict[str, str]:
    from bactrian.ces.contract import STAGES

    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, cmd = pair.partition("=")
        if not sep or name not in STAGES:
            raise ConfigError(
                f"--stage {pair!r}: expected NAME=CMD with NAME one of {', '.join(STAGES)} "
                "(an empty CMD skips the stage)."
            )
        out[name] = cmd
    return out


def _config(workers: int | None, sandbox: str | None, timeout: float | None) -> CESConfig:
    return CESConfig.load(workers=workers, sandbox=sandbox, timeout_s=timeout)


def _spec(base: str, rev: str | None, stage: tuple[str, ...], adapter: str) -> BaseSpec:
    return BaseSpec(source=base, rev=rev, stages=_stages(stage), adapter=adapter)


base_options = [
    click.argument("base", type=click.Path(exists=True, file_okay=False)),
    click.option("--rev", help="Revision of a git/Mercurial BASE (default: the directory as is)."),
    click.option(
        "--stage",
        "stage",
        multiple=True,
        metavar="NAME=CMD",
        help="Override a stage's command, e.g. build='dune build @install' (repeatable).",
    ),
    click.option(
        "--adapter",
        type=click.Choice(["auto", "dune", "generic"]),
        default="auto",
        show_default=True,
        help="Language adapter supplying default stage commands.",
    ),
    click.option("--workers", type=int, help="Workers to warm (default: [ces] workers, or cores)."),
    click.option(
        "--sandbox", type=click.Choice(["bwrap", "none"]), help="Sandbox (default bwrap)."
    ),
    click.option("--timeout", type=float, help="Wall-clock limit per stage, seconds."),
]


def with_base_options(f: Any) -> Any:
    for opt in reversed(base_options):
        f = opt(f)
    return f


@click.group()
def group() -> None:
    """Code Evaluation Service: judge diffs stage by stage (apply, parse, typecheck, build,
    test) against pre-warmed, sandboxed copies of a base."""


@group.command()
@with_base_options
@click.option("--json", "as_json", is_flag=True, help="Print the warm info as JSON.")
def warm(
    base: str,
    rev: str | None,
    stage: tuple[str, ...],
    adapter: str,
    workers: int | None,
    sandbox: str | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Prepare green worker trees for BASE (kept on disk; later commands reuse them)."""
    from bactrian.ces.api import get_backend

    config = _config(workers, sandbox, timeout)
    info = get_backend("local", config).warm(_spec(base, rev, stage, adapter), workers)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(
            f"warm: {info['workers']} worker(s) for {base} (key {info['key']}) "
            f"in {info['warm_s']:.1f}s under {info['dir']}"
        )


@group.command(name="eval")
@with_base_options
@click.argument("diffs", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--lenient", is_flag=True, help="Allow lenient diff application (flagged).")
@click.option("--json", "as_json", is_flag=True, help='Print {"verdicts": [...]} as JSON.')
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where the workers run.",
)
@click.option(
    "--address",
    help="Ray cluster address for --backend ray ('auto', 'ray://head:10001'; default: a local Ray).",
)
def eval_cmd(
    base: str,
    rev: str | None,
    stage: tuple[str, ...],
    adapter: str,
    workers: int | None,
    sandbox: str | None,
    timeout: float | None,
    diffs: tuple[str, ...],
    lenient: bool,
    as_json: bool,
    backend: str,
    address: str | None,
) -> None:
    """Judge each DIFF file ('-' for stdin) against BASE, warming it first.

    Exit status 0 when every diff passed every stage, 2 when some did not."""
    from bactrian.ces.api import evaluate, shutdown

    texts = [sys.stdin.read() if d == "-" else Path(d).read_text() for d in diffs]
    if address:
        if backend != "ray":
            raise ConfigError("--address only applies to --backend ray.")
        os.environ["BACTRIAN_CES_RAY_ADDRESS"] = address  # read by the ray backend's config
    config = _config(workers, sandbox, timeout)
    try:
        verdicts = evaluate(
            _spec(base, rev, stage, adapter),
            texts,
            backend=backend,
            workers=workers,
            allow_lenient=lenient,
            config=config,
        )
    finally:
        shutdown()
    if as_json:
        click.echo(json.dumps({"verdicts": [v.to_dict() for v in verdicts]}, indent=2))
    else:
        for name, v in zip(diffs, verdicts, strict=True):
            click.echo(_line(name, v))
    if not all(v.ok for v in verdicts):
        sys.exit(2)


def _line(name: str, v: Verdict) -> str:
    stages = " ".join(f"{s.name}:{s.status}" for s in v.stages)
    flags = f" [{', '.join(v.flags)}]" if v.flags else ""
    head = "OK  " if v.ok else ("ERR " if v.state == "error" else "FAIL")
    reward = "none" if v.reward is None else f"{v.reward:g}"
    text = f"{head} {name}: furthest={v.furthest} reward={reward} {stages}{flags}"
    if v.error:
        text += f"\n     error (the machine's, not the diff's): {v.error}"
    for d in v.diagnostics[:5]:
        text += "\n     " + d.headline()
    return text


@group.command()
@click.option("--json", "as_json", is_flag=True, help="Print status as JSON.")
def status(as_json: bool) -> None:
    """Bases kept warm on disk under the CES work dir."""
    from bactrian.ces.local import disk_bases

    config = CESConfig.load()
    info: dict[str, Any] = {
        "work_dir": str(config.resolved_work_dir()),
        "bases": disk_bases(config.resolved_work_dir()),
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"work dir: {info['work_dir']}")
    if not info["bases"]:
        click.echo("no warm bases")
    for b in info["bases"]:
        rev = f"@{b.get('rev')}" if b.get("rev") else ""
        click.echo(f"  {b['source']}{rev}: {b['workers']} worker(s) in {b['dir']}")


# `bactrian ces serve` (the HTTP service) is defined in bactrian.ces.http and attached here:
# ces-serve adds `group.add_command(...)` below this line.


@group.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, default=8765, show_default=True, help="Port to bind.")
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where the workers run.",
)
@click.option("--address", help="Ray cluster address for --backend ray (default: a local Ray).")
@click.option("--workers", type=int, help="Workers per base (default: [ces] workers, or cores).")
@click.option(
    "--allow-root",
    "allow_root",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Only judge bases under this directory (repeatable; default: any the user can read).",
)
@click.option(
    "--token-env",
    metavar="VAR",
    help="Require 'Authorization: Bearer <token>', the token read from environment variable VAR.",
)
def serve(
    host: str,
    port: int,
    backend: str,
    address: str | None,
    workers: int | None,
    allow_root: tuple[str, ...],
    token_env: str | None,
) -> None:
    """Serve the CES over HTTP: POST /v1/batches, GET /v1/batches/ID, POST /v1/evaluate,
    GET /healthz, GET /metrics (Prometheus). Runs until interrupted."""
    from bactrian.ces.http import serve as run_server
    from bactrian.ces.http import token_from_env

    run_server(
        host,
        port,
        backend=backend,
        address=address,
        workers=workers,
        token=token_from_env(token_env),
        allowed_roots=list(allow_root),
    )
