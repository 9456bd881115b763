"""``conveyor metrics``: the cluster's gauges for Prometheus, read from the broker."""

from __future__ import annotations

import signal
import threading

import click

from .common import app_option, ctx_app, loglevel_option

__all__ = ["metrics"]


@click.command()
@app_option
@click.option("--port", default=9808, show_default=True, help="Port to serve /metrics on.")
@click.option("--addr", default="0.0.0.0", show_default=True, help="Address to listen on.")
@loglevel_option
@click.pass_context
def metrics(ctx: click.Context, app_spec: str | None, port: int, addr: str, loglevel: str) -> None:
    """Serve queue depths, dead letters and workers for Prometheus until stopped.

    Each scrape asks the broker; run one beside the cluster, not one per worker (a
    worker's own task counters are on 'conveyor worker --metrics-port'). SIGTERM or
    Ctrl-C stops it.
    """
    from ..contrib.prometheus import serve_cluster_metrics
    from ..log import setup_logging

    app = ctx_app(ctx, app_spec)
    setup_logging(loglevel)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server, bound = serve_cluster_metrics(app, port, addr)
    click.echo(f"cluster metrics on http://{addr}:{bound}/metrics", err=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.shutdown()
        server.server_close()
