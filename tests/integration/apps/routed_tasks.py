"""A project that routes its tasks the way Celery's routing guide does: queues declared
with ``Queue`` objects, routes by name and by glob pattern, a router function first.

Its workers are started without ``-Q`` (consuming every queue ``task_queues`` names) or
with ``-Q`` naming some of them. Each task reports the queue it came from and the worker
that ran it.
"""

from __future__ import annotations

import os
from typing import Any

from conveyor import Conveyor, Queue
from conveyor.routing import Exchange

app = Conveyor("routed", broker=os.environ["CONVEYOR_BROKER_URL"])

app.conf.task_queues = (
    Queue("default", Exchange("default"), routing_key="default"),
    Queue("feeds", Exchange("feeds"), routing_key="feed.#"),
    Queue("mail", Exchange("mail"), routing_key="mail"),
)


def route_urgent(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any):
    """Urgent mail skips the line: a router function, asked before the table below."""
    if name == "routed_tasks.send_email" and kwargs.get("urgent"):
        return {"queue": "mail", "priority": 9}
    return None


app.conf.task_routes = [
    route_urgent,
    {
        "routed_tasks.import_*": {"queue": "feeds", "routing_key": "feed.import"},
        "routed_tasks.send_email": "mail",
    },
]


def _where(task: Any) -> dict[str, Any]:
    return {
        "queue": task.request.delivery_info.get("queue"),
        "hostname": task.request.hostname,
    }


@app.task(bind=True)
def import_feed(self: Any, url: str) -> dict[str, Any]:
    return _where(self)


@app.task(bind=True)
def send_email(self: Any, to: str, urgent: bool = False) -> dict[str, Any]:
    return _where(self)


@app.task(bind=True)
def tidy(self: Any) -> dict[str, Any]:
    return _where(self)
