"""``bactrian aid serve|status|restart|report``: thin adapters over the sidecar's library."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from bactrian.aid.client import AidClient, ConnectionLost
from bactrian.aid.config import load_aid_config
from bactrian.aid.deploy import spawn_server
from bactrian.aid.paths import AidError, Layout, socket_path
from bactrian.aid.protocol import RpcError

SOCKET_HELP = "The Unix socket (default: [aid] socket, else $XDG_RUNTIME_DIR/bactrian/aid.sock)."
CONFIG_HELP = (
    "A bactrian config file (TOML) with [aid] and [models.NAME] tables; sets BACTRIAN_CONFIG."
)


def _config_path(config: str | None) -> Path | None:
    if config:
        path = Path(config).expanduser().absolute()
        if not path.is_file():
            raise click.ClickException(f"Config file {path} does not exist.")
        os.environ["BACTRIAN_CONFIG"] = str(path)  # [models.NAME] are read from it too
        return path
    return None


@click.group()
def group() -> None:
    """AID, the editor sidecar: one process per user that editors talk to (JSON-RPC over a
    Unix socket; docs/aid-protocol.md)."""


@group.command()
@click.option("--socket", "socket_opt", type=click.Path(dir_okay=False), help=SOCKET_HELP)
@click.option("--config", "config", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option(
    "--detach", is_flag=True, help="Run in the background (log in the socket's state dir)."
)
@click.option(
    "--takeover", is_flag=True, hidden=True, help="Replace the running server (used by restart)."
)
@click.option("--no-warm", is_flag=True, help="Do not load the model before serving.")
def serve(
    socket_opt: str | None, config: str | None, detach: bool, takeover: bool, no_warm: bool
) -> None:
    """Serve editors on the socket until SIGTERM/SIGINT (SIGHUP reloads the config)."""
    path = _config_path(config)
    cfg = load_aid_config(path)
    layout = Layout(socket_path(socket_opt, cfg.socket))
    if detach:
        pid = spawn_server(layout, path, takeover=takeover, warm=not no_warm)
        _wait_answer(layout, None, 120.0)
        click.echo(f"aid server pid {pid} serves {layout.socket}")
        return
    # deferred: the server module is only needed by this command
    from bactrian.aid.server import serve as run_server  # noqa: PLC0415

    run_server(
        cfg,
        layout,
        config_path=path,
        takeover=takeover,
        warm=not no_warm,
        ready=lambda: print(f"aid: serving {layout.socket}", file=sys.stderr, flush=True),
    )


def _wait_answer(layout: Layout, old_id: str | None, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with AidClient(layout.socket, reconnect_s=0.2, timeout_s=5.0) as c:
                st = c.request("status", retry=False)
            if st.get("serverId") != old_id:
                return dict(st)
        except (ConnectionLost, RpcError, OSError, TimeoutError):
            pass
        time.sleep(0.05)
    raise AidError(
        f"No aid server answered on {layout.socket} within {timeout_s:.0f} s; see {layout.log}."
    )


@group.command()
@click.option("--socket", "socket_opt", type=click.Path(dir_okay=False), help=SOCKET_HELP)
@click.option("--config", "config", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, exists=True),
    help="Show this workspace's build status too.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(
    socket_opt: str | None, config: str | None, workspace: str | None, as_json: bool
) -> None:
    """Whether the sidecar runs, its version, model, arm and build status."""
    cfg = load_aid_config(_config_path(config))
    layout = Layout(socket_path(socket_opt, cfg.socket))
    try:
        root = str(Path(workspace).resolve()) if workspace else None
        with AidClient(layout.socket, root=root, reconnect_s=0.5, timeout_s=10.0) as c:
            st = c.request("status", retry=False)
    except (ConnectionLost, OSError, TimeoutError):
        raise AidError(
            f"No aid server runs on {layout.socket}: start one with `bactrian aid serve`."
        ) from None
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(
        f"aid {st['serverVersion']} (protocol {st['protocolVersion']}), pid {st['pid']}, up {st['uptimeS']:.0f} s, {st['clients']} client(s), {st['inFlight']} in flight"
    )
    click.echo(
        f"socket {layout.socket}; model {st['model']}"
        + (f", arm {st['arm']}" if st.get("arm") else "")
    )
    build = st.get("build")
    if build:
        click.echo(
            f"build {build.get('status')} ({len(build.get('diagnostics') or [])} diagnostics)"
        )


@group.command()
@click.option("--socket", "socket_opt", type=click.Path(dir_okay=False), help=SOCKET_HELP)
@click.option("--config", "config", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option(
    "--timeout",
    "timeout_s",
    default=120.0,
    show_default=True,
    help="Seconds to wait for the new server.",
)
def restart(socket_opt: str | None, config: str | None, timeout_s: float) -> None:
    """Replace the running sidecar by a new process (new code, new config); editors reconnect
    by themselves. Starts one when none runs."""
    cfg_path = _config_path(config)
    cfg = load_aid_config(cfg_path)
    layout = Layout(socket_path(socket_opt, cfg.socket))
    info = layout.read_pid() or {}
    old_id = None
    try:
        with AidClient(layout.socket, reconnect_s=0.2, timeout_s=5.0) as c:
            old_id = c.request("status", retry=False).get("serverId")
    except (ConnectionLost, RpcError, OSError, TimeoutError):
        info = {}
    if cfg_path is None and info.get("config"):
        cfg_path = _config_path(str(info["config"]))
    start = time.monotonic()
    pid = spawn_server(layout, cfg_path, takeover=old_id is not None)
    st = _wait_answer(layout, old_id, timeout_s)
    what = "replaced" if old_id else "started"
    click.echo(
        f"aid server {what}: pid {pid} answers on {layout.socket} ({time.monotonic() - start:.2f} s)"
    )
    _ = st


@group.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), help=CONFIG_HELP)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, exists=True),
    help="The metrics database (default: [aid] metrics_db).",
)
@click.option("--experiment", help="Only this experiment's requests.")
@click.option("--since", type=float, help="Only requests since this Unix time.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--html",
    "html",
    type=click.Path(dir_okay=False),
    help="Write an HTML report with figures here.",
)
def report(
    config: str | None,
    db: str | None,
    experiment: str | None,
    since: float | None,
    as_json: bool,
    html: str | None,
) -> None:
    """Per-arm acceptance with Wilson intervals, the difference between arms with its
    interval and a two-proportion test, and latency percentiles."""
    from bactrian.aid.metrics import MetricsDB  # noqa: PLC0415
    from bactrian.aid.report import build_report, render_html, render_text  # noqa: PLC0415

    cfg = load_aid_config(_config_path(config))
    path = Path(db) if db else cfg.metrics_path()
    if not path.exists():
        raise AidError(
            f"No metrics yet: {path} does not exist (the sidecar writes it as editors use it)."
        )
    mdb = MetricsDB(path)
    try:
        rep = build_report(mdb.rows(since, experiment))
    finally:
        mdb.close()
    if html:
        Path(html).write_text(render_html(rep))
    click.echo(json.dumps(rep, indent=2) if as_json else render_text(rep))
