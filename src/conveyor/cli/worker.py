"""``conveyor worker`` (with ``--beat``) and ``conveyor demo``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..app import Conveyor
from ..exceptions import ConveyorError
from .common import app_option, ctx_app, loglevel_option

__all__ = ["demo", "worker"]

CELERY_WORKER_FLAGS = {
    "without_gossip": "--without-gossip",
    "without_mingle": "--without-mingle",
    "without_heartbeat": "--without-heartbeat",
}
"""Celery worker flags for AMQP features Conveyor's workers do not have: accepted, noted."""


@click.command()
@app_option
@click.option("-c", "--concurrency", type=int, help="Child processes or threads [CPU count].")
@click.option(
    "-Q", "--queues", help="Comma-separated queues to consume [task_queues, else default]."
)
@click.option("-n", "--hostname", help="Worker name [conveyor@HOST].")
@click.option(
    "-P",
    "--pool",
    type=click.Choice(["prefork", "threads", "solo", "asyncio"]),
    help="Pool [prefork]; asyncio: one process for async def tasks.",
)
@click.option(
    "--async-concurrency",
    type=click.IntRange(min=1),
    help="async def tasks each process runs at once on its event loop [100].",
)
@loglevel_option
@click.option("--prefetch-multiplier", type=int, help="Messages each consumer reserves at once.")
@click.option("--max-tasks-per-child", type=int, help="Replace a child after this many tasks.")
@click.option("-B", "--beat", is_flag=True, help="Also run the periodic task scheduler.")
@click.option("--without-gossip", is_flag=True, help="Celery's; no effect here.")
@click.option("--without-mingle", is_flag=True, help="Celery's; no effect here.")
@click.option("--without-heartbeat", is_flag=True, help="Celery's; no effect here.")
@click.option(
    "-O",
    "--optimization",
    type=click.Choice(["default", "fair"]),
    help="Celery's; workers here always reserve fairly.",
)
@click.option(
    "--metrics-port",
    type=int,
    help="Serve Prometheus metrics of this worker on this port (0: any free one).",
)
@click.option(
    "--metrics-addr", default="0.0.0.0", show_default=True, help="Address for --metrics-port."
)
@click.pass_context
def worker(
    ctx: click.Context,
    app_spec: str | None,
    concurrency: int | None,
    queues: str | None,
    hostname: str | None,
    pool: str | None,
    async_concurrency: int | None,
    loglevel: str,
    prefetch_multiplier: int | None,
    max_tasks_per_child: int | None,
    beat: bool,
    without_gossip: bool,
    without_mingle: bool,
    without_heartbeat: bool,
    optimization: str | None,
    metrics_port: int | None,
    metrics_addr: str,
) -> None:
    """Start a worker."""
    from ..log import setup_logging
    from ..worker.runner import Worker

    if metrics_port is not None:  # before the app loads: its children count into one place
        from ..contrib.prometheus import serve_worker_metrics

        ctx.with_resource(serve_worker_metrics(metrics_port, metrics_addr))
    app = ctx_app(ctx, app_spec)
    app.import_includes()  # before logging: a setup_logging receiver may be connected there
    setup_logging(loglevel)
    _note_celery_flags(
        without_gossip=without_gossip,
        without_mingle=without_mingle,
        without_heartbeat=without_heartbeat,
        optimization=optimization,
    )
    if async_concurrency is not None:
        app.conf.worker_async_concurrency = async_concurrency
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    try:
        pool_runner = Worker(
            app, queue_list, concurrency, pool, hostname, prefetch_multiplier, max_tasks_per_child
        )
        with beat_beside(app, beat):
            code = pool_runner.run()
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


def _note_celery_flags(**flags: Any) -> None:
    given = [CELERY_WORKER_FLAGS[name] for name in CELERY_WORKER_FLAGS if flags.get(name)]
    if flags.get("optimization"):
        given.append(f"-O {flags['optimization']}")
    if given:
        logging.getLogger("conveyor.worker").info(
            "%s: Celery's, no effect here (workers share no gossip, mingle or AMQP "
            "heartbeats, and each reserves only what it can start)",
            " ".join(given),
        )


@contextmanager
def beat_beside(app: Conveyor, enabled: bool) -> Iterator[None]:
    """With ``--beat``, a scheduler thread in this process (the prefork supervisor, or the
    threads/solo worker) for as long as the worker runs."""
    if not enabled:
        yield
        return
    from ..beat import BeatThread

    app.import_includes()  # entries declared in included modules must be synced too
    with BeatThread(app):
        yield


@click.command()
@click.option("-c", "--concurrency", default=2, show_default=True, help="Worker processes.")
def demo(concurrency: int) -> None:
    """Run a real worker on a temporary embedded broker and send it example tasks."""
    from ..demo import run_demo

    sys.exit(run_demo(concurrency))
