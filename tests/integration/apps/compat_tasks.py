"""Tasks written the way Celery projects write them, for test_celery_messages.py: a
consumer that rejects until it is ready, values without annotations that must keep
their types, and a long task to revoke by its stamp.

Registered on the sample app; workers load this module through
``CONVEYOR_INCLUDE=compat_tasks`` next to ``-A sample_tasks:app``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sample_tasks import app

from conveyor import Reject


def note(path: str | Path, **fields: Any) -> None:
    """Append one JSON line (one small write: lines from several processes do not mix)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(fields) + "\n")


@app.task(name="compat.import_feed", bind=True)
def import_feed(self: Any, feed: str, log: str, ready_on: int) -> str:
    """Requeue the message until its ``ready_on``-th delivery (a dependency not up yet)."""
    info = self.request.delivery_info
    note(log, delivery=self.request.delivery_count, redelivered=info["redelivered"])
    if self.request.delivery_count < ready_on:
        raise Reject(f"{feed}: the upstream is not ready", requeue=True)
    return f"{feed} imported"


@app.task(name="compat.parse_invoice")
def parse_invoice(payload):  # type: ignore[no-untyped-def]
    raise Reject(f"malformed invoice {payload!r}", requeue=False)


@app.task(name="compat.describe")
def describe(value, *more, **named):  # type: ignore[no-untyped-def]
    """Unannotated: what arrived, by type, and the values themselves back."""
    received = [value, *more, *named.values()]
    return {"types": [type(v).__name__ for v in received], "values": received}


@app.task(name="compat.wait_for_gate", bind=True)
def wait_for_gate(self: Any, gate: str, log: str) -> str:
    note(log, started=self.request.id)
    deadline = time.monotonic() + 30
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "done"


@app.task(name="compat.sign_in")
def sign_in(user: str, password: str) -> str:
    raise PermissionError(f"{user} may not sign in")
