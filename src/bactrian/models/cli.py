"""``bactrian models list|show|try|serve`` — thin adapters over :mod:`bactrian.models`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bactrian.models.backends import make_backend
from bactrian.models.base import named_models, register_directory, resolve_model


@click.group("models")
def group() -> None:
    """Named model backends: list them, show one, try a prompt, serve one over HTTP."""


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_cmd(as_json: bool) -> None:
    """Every named model (built-in and [models.NAME] tables of the config file)."""
    models = named_models()
    if as_json:
        click.echo(json.dumps({n: m.describe() for n, m in models.items()}, indent=2))
        return
    for name, m in sorted(models.items()):
        where = m.path or m.base_url or "(not configured)"
        click.echo(f"{name:<16} {m.backend:<13} {where}  strategy={m.strategy}")


@group.command("add")
@click.argument("name")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def add_cmd(name: str, directory: Path) -> None:
    """Register the local model in DIRECTORY (a checkpoint, a PEFT adapter, or a `bactrian
    train` output) under NAME, for `bactrian eval --model NAME` and the sidecar."""
    cfg = register_directory(name, directory)
    where = cfg.path + (f" + adapter {cfg.adapter}" if cfg.adapter else "")
    click.echo(f"registered {name}: {where} (strategy {cfg.strategy})")


@group.command("show")
@click.argument("name")
def show_cmd(name: str) -> None:
    """One named model's settings as JSON."""
    click.echo(json.dumps(resolve_model(name).describe(), indent=2))


@group.command("try")
@click.argument("name")
@click.argument("prompt")
@click.option("--max-tokens", type=int, help="Tokens to generate (default: the model's).")
@click.option("--temperature", type=float, help="Sampling temperature (0: greedy).")
@click.option("--seed", type=int)
@click.option("--no-stream", is_flag=True, help="Wait for the whole reply instead of streaming.")
def try_cmd(
    name: str,
    prompt: str,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    no_stream: bool,
) -> None:
    """Send PROMPT to model NAME and print the reply (streamed), then its timings."""
    cfg = resolve_model(name)
    sampling = cfg.sampling(max_tokens=max_tokens, temperature=temperature, seed=seed)
    backend = make_backend(cfg)
    messages = [{"role": "user", "content": prompt}]
    try:
        if no_stream:
            c = backend.generate(messages, sampling)[0]
            click.echo(c.text)
        else:
            stream = backend.stream(messages, sampling)
            for delta in stream:
                sys.stdout.write(delta)
                sys.stdout.flush()
            click.echo("")
            assert stream.completion is not None
            c = stream.completion
    finally:
        backend.close()
    ttft = f"{c.ttft_s:.2f} s" if c.ttft_s is not None else "-"
    click.echo(
        f"[{c.model}: {c.tokens_in} tokens in, {c.tokens_out} out, first token {ttft}, "
        f"total {c.latency_s:.2f} s, {c.finish_reason}]",
        err=True,
    )


@group.command("serve")
@click.argument("name", default="smollm2")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def serve_cmd(name: str, host: str, port: int) -> None:
    """Serve model NAME (a local backend) as an OpenAI-compatible server."""
    from bactrian.models.server import serve

    cfg = resolve_model(name)
    if cfg.backend == "openai":
        raise click.ClickException(
            f"Model {name!r} is already served over HTTP ({cfg.base_url}); `models serve` "
            "serves local backends (e.g. smollm2)."
        )
    backend = make_backend(cfg)
    click.echo(f"serving {name} on http://{host}:{port}/v1 (Ctrl-C stops)", err=True)
    serve(backend, name, host, port)
