"""``conveyor``: worker, beat, call, result, queues, purge, dead-letters, metrics, status,
inspect, control and demo.

One module per group of commands; this one makes the ``conveyor`` group and names them, so
that running one imports its module only (``Commands``).
"""

from __future__ import annotations

import click

from .common import Commands, load_app

__all__ = ["load_app", "main"]

COMMANDS = {
    "worker": ".worker:worker",
    "call": ".call:call",
    "result": ".call:result",
    "purge": ".queues:purge",
    "queues": ".queues:queues",
    "dead-letters": ".queues:dead_letters",
    "demo": ".worker:demo",
    "beat": ".beat:beat",
    "metrics": ".metrics:metrics",
    "dashboard": ".dashboard:dashboard",
    "events": ".events:events",
    "top": ".events:top",
    "tasks": ".tasks:tasks",
    "status": ".status:status",
    "inspect": ".inspect:inspect",
    "control": ".control:control",
}
"""Each command and where it lives: its module loads when it runs (``Commands``)."""


@click.group(cls=Commands, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", "app_spec", help="module:app to load (or CONVEYOR_APP).")
@click.version_option(package_name="conveyor-tasks")
@click.pass_context
def main(ctx: click.Context, app_spec: str | None) -> None:
    """Conveyor: a distributed task queue with Celery's API."""
    ctx.obj = {"app": app_spec}
