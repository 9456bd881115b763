"""Tasks for the workflow integration tests (test_workflows.py, test_chord_faults.py).

Registered on the sample app (same SQLite file, ``broker_lease=2``). Workers load this
module through ``CONVEYOR_INCLUDE=workflow_tasks`` next to ``-A sample_tasks:app``; the
tests import it afresh after ``sample_tasks`` (see workflow_support.py).

Tasks that report what they saw append one JSON line to a file the test passes in.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sample_tasks import app


def note(path: str | Path, **fields: Any) -> None:
    """Append one JSON line (one small write: lines from several processes do not mix)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(fields) + "\n")


class Declined(Exception):
    """A business error raised on purpose."""


# -- arithmetic ---------------------------------------------------------------------------


@app.task(name="wf.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="wf.mul")
def mul(x: int, y: int) -> int:
    return x * y


@app.task(name="wf.tsum")
def tsum(values: list[int]) -> int:
    return sum(values)


@app.task(name="wf.identity")
def identity(value: Any) -> Any:
    return value


@app.task(name="wf.fail")
def fail(*args: Any) -> None:
    raise Declined(f"declined {list(args)}")


@app.task(name="wf.flatten")
def flatten(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return out


# -- what a task sees ---------------------------------------------------------------------


@app.task(name="wf.who", bind=True)
def who(self: Any, value: Any = None) -> dict[str, Any]:
    """Its own ids and headers, and the value it was given."""
    request = self.request
    return {
        "value": value,
        "id": request.id,
        "parent_id": request.parent_id,
        "root_id": request.root_id,
        "group_id": request.group_id,
        "correlation_id": request.headers.get("correlation_id"),
    }


@app.task(name="wf.logged", bind=True)
def logged(self: Any, value: Any, log: str, label: str) -> Any:
    """Pass ``value`` on; note the ids and the correlation header."""
    request = self.request
    note(
        log,
        label=label,
        id=request.id,
        parent_id=request.parent_id,
        root_id=request.root_id,
        correlation_id=request.headers.get("correlation_id"),
    )
    return value


@app.task(name="wf.record_error")
def record_error(failed_id: str, log: str) -> str:
    """An errback (Celery's old style): gets the failed task's id first."""
    note(log, kind="errback", failed=failed_id)
    return failed_id


@app.task(name="wf.error_handler")
def error_handler(request: Any, exc: BaseException, traceback: Any, log: str) -> None:
    """An errback (Celery's new style): runs in the worker with the failure itself."""
    note(log, kind="handler", failed=request.id, error=f"{type(exc).__name__}: {exc}")


@app.task(name="wf.announce")
def announce(log: str, label: str) -> None:
    """A callback that takes no result (``group.link`` makes it immutable)."""
    note(log, kind="announce", label=label)


@app.task(name="wf.callback_ran")
def callback_ran(values: Any, log: str) -> Any:
    note(log, kind="callback", values=values)
    return values


@app.task(name="wf.replacer", bind=True)
def replacer(self: Any, x: int) -> Any:
    """Hands its work to add(x, 100)."""
    return self.replace(add.s(x, 100))


@app.task(name="wf.fan_out", bind=True)
def fan_out(self: Any, n: int) -> Any:
    """Replaces itself with a group; its result becomes the group's list."""
    from conveyor import group

    return self.replace(group(mul.s(i, i) for i in range(n)))


# -- the seeds' order workflow ------------------------------------------------------------


@app.task(name="orders.validate_order", bind=True)
def validate_order(self: Any, order_id: int, log: str) -> int:
    note(log, step="validate", correlation_id=self.request.headers.get("correlation_id"))
    return order_id


@app.task(name="orders.process_item", bind=True)
def process_item(self: Any, order_id: int, item_id: int, log: str) -> dict[str, int]:
    note(log, step="item", correlation_id=self.request.headers.get("correlation_id"))
    return {"order": order_id, "item": item_id, "amount": item_id * 10}


@app.task(name="orders.finalize_order", bind=True)
def finalize_order(
    self: Any, items: list[dict[str, int]], order_id: int, log: str
) -> dict[str, Any]:
    note(log, step="finalize", correlation_id=self.request.headers.get("correlation_id"))
    return {"order": order_id, "items": len(items), "total": sum(i["amount"] for i in items)}


@app.task(name="orders.send_confirmation", bind=True)
def send_confirmation(self: Any, summary: dict[str, Any], log: str) -> str:
    note(log, step="confirm", correlation_id=self.request.headers.get("correlation_id"))
    return f"order {summary['order']}: {summary['items']} items, {summary['total']}"


@app.task(name="orders.process_chunk")
def process_chunk(item_ids: list[int]) -> int:
    return len(item_ids)


@app.task(name="orders.aggregate_results")
def aggregate_results(results: list[int]) -> int:
    return sum(results)


# -- the chord fault test -----------------------------------------------------------------


@app.task(name="wf.chord_member", bind=True)
def chord_member(self: Any, chord_no: int, index: int, log: str, pause: float) -> int:
    """Note the run, take a moment (so kills land mid-task), return a known value."""
    note(log, chord=chord_no, index=index, delivery=self.request.delivery_count)
    time.sleep(pause)
    return chord_no * 1000 + index


@app.task(name="wf.chord_done", bind=True)
def chord_done(
    self: Any, values: list[int], chord_no: int, log: str, members_log: str, size: int
) -> int:
    """Record the firing: how many members had run by then, and what it was given."""
    ran: set[int] = set()
    with open(members_log, encoding="utf-8") as handle:
        for line in handle:
            entry = json.loads(line)
            if entry["chord"] == chord_no:
                ran.add(entry["index"])
    total = sum(values)
    note(
        log,
        chord=chord_no,
        total=total,
        count=len(values),
        members_seen=len(ran),
        delivery=self.request.delivery_count,
        task_id=self.request.id,
    )
    return total


@app.task(name="wf.split_batch", bind=True)
def split_batch(self: Any, rows: list[int]) -> int:
    """A chord member that finds more work: the chord's callback waits for it too."""
    if len(rows) > 2:
        self.add_to_chord(split_batch.s(rows[2:]))
    return sum(rows[:2])
