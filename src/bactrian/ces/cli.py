"""``bactrian ces``: warm a base, judge diffs, show status. Thin adapters over
:mod:`bactrian.ces.api` and the backends."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from bactrian.ces.config import EDITS_TESTS_POLICIES, CESConfig
from bactrian.ces.contract import BaseSpec, Verdict
from bactrian.errors import CESError, ConfigError
from bactrian.extras import require


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
    # absolute: a `ces serve` reading the spec runs in another directory
    return BaseSpec(
        source=str(Path(base).resolve()), rev=rev, stages=_stages(stage), adapter=adapter
    )


def _verbosity() -> int:
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return int(root.params.get("verbose") or 0) if root is not None else 0


def _read_diff(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"Diff file {name!r} does not exist: give the path of a diff file, or '-' for stdin."
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{name!r} is a directory, not a diff file.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"Diff file {name!r} is not UTF-8 text: a diff must be text.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read diff file {name!r}: {exc.strerror or exc}.") from None


def _pick_backend(backend: str | None, config: CESConfig) -> str:
    """``--backend``, or: the ``[ces] url`` service when it answers, else ``local``."""
    if backend is not None:
        return backend
    if not config.url:
        return "local"
    from bactrian.ces.client import CESClient

    try:
        with CESClient(config.url, timeout_s=2.0) as probe:
            probe.health()
    except CESError as exc:
        import logging

        logging.getLogger(__name__).warning(
            "[ces] url %s: no CES service answers (%s); judging in this process.", config.url, exc
        )
        return "local"
    return "http"


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
    type=click.Choice(["local", "ray", "http"]),
    default=None,
    help="Where the workers run: in this process (local), on Ray, or a running `ces serve` "
    "(http, at --url / [ces] url). Default: that service when [ces] url is set and it "
    "answers, else local.",
)
@click.option(
    "--address",
    help="Ray cluster address for --backend ray ('auto', 'ray://head:10001'; default: a local Ray).",
)
@click.option("--url", help="A running `bactrian ces serve` to judge through (sets [ces] url).")
@click.option(
    "--token-env", metavar="VAR", help="Environment variable holding that service's token."
)
@click.option(
    "--edits-tests-policy",
    "policy",
    type=click.Choice(EDITS_TESTS_POLICIES),
    help="What the test stage does with a diff that touches tests (default: [ces] "
    "edits_tests_policy). 'trust' runs the diff's tests as written: human-written diffs only "
    "(a service refuses it unless started with --allow-trust).",
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
    backend: str | None,
    address: str | None,
    url: str | None,
    token_env: str | None,
    policy: str | None,
) -> None:
    """Judge each DIFF file ('-' for stdin) against BASE, warming it first.

    Exit status 0 when every diff passed every stage, 2 when some did not. -v prints each
    stage's command and time; -vv also logs the sandbox command lines."""
    from bactrian.ces.api import evaluate, shutdown

    texts = [_read_diff(d) for d in diffs]
    if address:
        if backend != "ray":
            raise ConfigError("--address only applies to --backend ray.")
        os.environ["BACTRIAN_CES_RAY_ADDRESS"] = address  # read by the ray backend's config
    extra: dict[str, Any] = {}
    if url:
        extra["url"] = url
    if token_env:
        extra["token_env"] = token_env
    config = CESConfig.load(workers=workers, sandbox=sandbox, timeout_s=timeout, **extra)
    if backend == "http" and not config.url:
        raise ConfigError("--backend http needs the service's address: --url or [ces] url.")
    chosen = _pick_backend(backend, config)
    try:
        verdicts = evaluate(
            _spec(base, rev, stage, adapter),
            texts,
            backend=chosen,
            workers=workers if chosen != "http" else None,
            allow_lenient=lenient,
            config=config,
            edits_tests_policy=policy,
        )
    finally:
        shutdown()
    if as_json:
        click.echo(json.dumps({"verdicts": [v.to_dict() for v in verdicts]}, indent=2))
    else:
        verbose = _verbosity()
        for name, v in zip(diffs, verdicts, strict=True):
            click.echo(_line(name, v))
            if verbose:
                click.echo(_stage_lines(v))
    if not all(v.ok for v in verdicts):
        sys.exit(2)


def _stage_lines(v: Verdict) -> str:
    """One line per stage: status, time, and the command that ran (``-v``)."""
    rows = []
    for s in v.stages:
        cmd = f"  $ {s.command}" if s.command else ""
        rows.append(f"     {s.name:<9} {s.status:<7} {s.duration_s:7.2f}s{cmd}")
    return "\n".join(rows)


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


# `bactrian ces serve`: the HTTP service of bactrian.ces.service


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
@click.option(
    "--max-body-mb",
    type=click.FloatRange(min=0.001),
    default=32.0,
    show_default=True,
    help="Largest request body accepted (413 above it).",
)
@click.option(
    "--keep-batches",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Finished batches kept for polling, at most.",
)
@click.option(
    "--keep-mb",
    type=click.FloatRange(min=0.0),
    default=64.0,
    show_default=True,
    help="Verdicts of finished batches kept, at most (oldest dropped first).",
)
@click.option(
    "--keep-s",
    type=click.FloatRange(min=0.0),
    default=3600.0,
    show_default=True,
    help="Seconds a finished batch stays fetchable.",
)
@click.option(
    "--allow-trust",
    is_flag=True,
    help="Let requests ask for edits_tests_policy 'trust' (the diff's own tests run as "
    "written: for human-written diffs only). Refused with 403 otherwise.",
)
@click.option(
    "--openrlhf-dataset",
    type=click.Path(exists=True, file_okay=False),
    help="Also serve OpenRLHF's remote reward endpoint (POST /openrlhf/reward) over the "
    "examples of this dataset (labels = example ids).",
)
@click.option(
    "--openrlhf-strategy",
    default="unified-diff",
    show_default=True,
    help="The prompt strategy that parses the responses back into diffs.",
)
def serve(
    host: str,
    port: int,
    backend: str,
    address: str | None,
    workers: int | None,
    allow_root: tuple[str, ...],
    token_env: str | None,
    max_body_mb: float,
    keep_batches: int,
    keep_mb: float,
    keep_s: float,
    allow_trust: bool,
    openrlhf_dataset: str | None,
    openrlhf_strategy: str,
) -> None:
    """Serve the CES over HTTP: POST /v1/batches, GET /v1/batches/ID, POST /v1/evaluate,
    POST /v1/warm, GET /v1/status, GET /healthz, GET /metrics (Prometheus), and with
    --openrlhf-dataset POST /openrlhf/reward. Runs until interrupted."""
    for module in ("fastapi", "uvicorn", "prometheus_client"):
        require(module, "serve", what="bactrian ces serve")
    from bactrian.ces.client import token_from_env
    from bactrian.ces.service import Retention
    from bactrian.ces.service import serve as run_server

    mb = 1024 * 1024
    run_server(
        host,
        port,
        backend=backend,
        address=address,
        workers=workers,
        token=token_from_env(token_env),
        allowed_roots=list(allow_root),
        max_body_bytes=int(max_body_mb * mb),
        retention=Retention(keep=keep_batches, keep_bytes=int(keep_mb * mb), keep_s=keep_s),
        allow_trust=allow_trust,
        openrlhf_dataset=openrlhf_dataset,
        openrlhf_strategy=openrlhf_strategy,
    )
