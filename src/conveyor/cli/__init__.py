"""``conveyor``: worker, beat, call, result, queues, purge, dead-letters, metrics, status,
inspect, control and demo.

One module per group of commands; this one makes the ``conveyor`` group and adds them.
"""

from __future__ import annotations

import click

from .beat import beat
from .call import call, result
from .common import Commands, load_app
from .control import control
from .dashboard import dashboard
from .events import events, top
from .inspect import inspect
from .metrics import metrics
from .queues import dead_letters, purge, queues
from .status import status
from .tasks import tasks
from .worker import demo, worker

__all__ = ["load_app", "main"]


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", "app_spec", help="module:app to load (or CONVEYOR_APP).")
@click.version_option(package_name="conveyor-tasks")
@click.pass_context
def main(ctx: click.Context, app_spec: str | None) -> None:
    """Conveyor: a distributed task queue with Celery's API."""
    ctx.obj = {"app": app_spec}


for command in (worker, call, result, purge, queues, dead_letters, demo, beat, metrics, dashboard):
    main.add_command(command)
for command in (events, top, tasks):  # events.py, tasks.py
    main.add_command(command)
for command in (status, inspect, control):  # status.py, inspect.py, control.py
    main.add_command(command)
