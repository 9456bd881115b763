"""A ``tasks/`` package: autodiscovery imports it and each of its modules (``more.py`` is
not imported from here on purpose)."""

from __future__ import annotations

import os
from typing import Any

from conveyor import shared_task

from ..models import Tick


@shared_task(name="testapp.ping")
def ping() -> str:
    return "pong"


@shared_task(name="testapp.tick")
def tick(label: str = "tick") -> int:
    Tick.objects.create(label=label)
    return Tick.objects.filter(label=label).count()


@shared_task(name="testapp.connection_state")
def connection_state() -> dict[str, Any]:
    """Whether the worker closed the connection before this task (CONN_MAX_AGE = 0)."""
    from django.db import connection

    fresh = connection.connection is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"fresh": fresh, "pid": os.getpid()}
