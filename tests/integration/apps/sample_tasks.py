"""Tasks the integration tests run inside real ``conveyor worker`` processes.

The app takes its SQLite file from CONVEYOR_BROKER_URL, which every test points at a file
in its own tmp_path (or, for tests that run on Redis too, at the private redis-server with
a key prefix of the test's own). Without it the module refuses to import, so nothing can
ever fall back to the shared ./conveyor.db.

Tasks that must stay "running" while a test does something to the worker wait for a gate
file to appear instead of sleeping for a guessed time, so no test depends on timing.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from conveyor import Conveyor, get_task_logger

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError(
        "sample_tasks needs CONVEYOR_BROKER_URL=sqlite:////absolute/path.db or redis://... "
        f"(got {BROKER_URL!r}); the integration tests set it to a file in tmp_path"
    )

app = Conveyor("sample", broker=BROKER_URL, broker_lease=2)
logger = get_task_logger(__name__)

GATE_TIMEOUT = 30.0
"""A gated task gives up after this long, so a broken test never leaves a task hanging."""


def append_record(path: str | Path, **fields: Any) -> None:
    """Append one JSON line; small appends from several processes do not interleave."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(fields) + "\n")


def wait_for_file(path: str | Path, timeout: float = GATE_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def count_lines(path: str | Path) -> int:
    try:
        with open(path, encoding="utf-8") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


# -- plain results ----------------------------------------------------------------------


@app.task
def ping() -> str:
    return "pong"


@app.task
def add(x: int, y: int) -> int:
    return x + y


@dataclass
class Order:
    sku: str
    quantity: int
    unit_price: Decimal


@app.task
def order_total(order: Order) -> dict[str, str]:
    if not isinstance(order, Order):
        raise TypeError(f"order arrived as {type(order).__qualname__}, not Order")
    if not isinstance(order.unit_price, Decimal):
        raise TypeError(f"unit_price arrived as {type(order.unit_price).__qualname__}")
    return {"sku": order.sku, "total": str(order.unit_price * order.quantity)}


@app.task
def describe_values(when: datetime, ident: UUID, amount: Decimal) -> dict[str, Any]:
    return {
        "types": [type(when).__name__, type(ident).__name__, type(amount).__name__],
        "when": when.isoformat(),
        "uuid": str(ident),
        "amount_plus_cent": str(amount + Decimal("0.01")),
    }


@app.task
def next_day(when: datetime) -> datetime:
    return when + timedelta(days=1)


class PaymentDeclined(Exception):
    """A business error the client should get back as itself."""


@app.task
def charge(card: str, amount: int) -> None:
    raise PaymentDeclined(f"card {card} declined for {amount}")


# -- retries ----------------------------------------------------------------------------


class TransientError(Exception):
    pass


class GatewayTimeout(Exception):
    pass


@app.task(bind=True, max_retries=5)
def flaky(self: Any, attempts_path: str, fail_times: int) -> dict[str, int]:
    """Fail ``fail_times`` times (retrying after 0.2 s), then succeed."""
    attempt = count_lines(attempts_path) + 1
    append_record(attempts_path, attempt=attempt, retries=self.request.retries)
    if attempt <= fail_times:
        raise self.retry(exc=TransientError(f"attempt {attempt} failed"), countdown=0.2)
    return {"attempt": attempt, "retries": self.request.retries}


def _record_failure(
    self: Any, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
) -> None:
    marker = Path(args[0]) / "on_failure.json"
    marker.write_text(
        json.dumps(
            {
                "type": type(exc).__name__,
                "message": str(exc),
                "task_id": task_id,
                "retries": self.request.retries,
            }
        )
    )


@app.task(bind=True, max_retries=2, on_failure=_record_failure)
def always_times_out(self: Any, workdir: str) -> None:
    append_record(Path(workdir) / "attempts.jsonl", retries=self.request.retries)
    raise self.retry(exc=GatewayTimeout("upstream gateway timed out"), countdown=0.1)


@app.task(bind=True, max_retries=3)
def retry_once(self: Any, attempts_path: str, countdown: float) -> int:
    append_record(attempts_path, retries=self.request.retries)
    if self.request.retries == 0:
        raise self.retry(exc=TransientError("first attempt failed"), countdown=countdown)
    return int(self.request.retries)


# -- progress ---------------------------------------------------------------------------


@app.task(bind=True)
def crunch(self: Any, total: int, gate: str) -> dict[str, int]:
    """Report PROGRESS 1/total, wait for the gate, then report the rest and finish."""
    for current in range(1, total + 1):
        self.update_state(state="PROGRESS", meta={"current": current, "total": total})
        if current == 1 and not wait_for_file(gate):
            raise TimeoutError(f"gate {gate} never opened")
    return {"done": total}


# -- held tasks, for killing and stopping workers mid-task --------------------------------


@app.task(bind=True)
def hold(self: Any, log_path: str, gate: str) -> dict[str, Any]:
    """Log a start line, wait for the gate, log a done line."""
    info = {
        "pid": os.getpid(),
        "redelivered": self.request.delivery_info.get("redelivered"),
        "delivery_count": self.request.delivery_count,
        "hostname": self.request.hostname,
    }
    append_record(log_path, event="start", **info)
    if not wait_for_file(gate):
        raise TimeoutError(f"gate {gate} never opened")
    append_record(log_path, event="done", **info)
    return info


# -- scheduling, routing ----------------------------------------------------------------


@app.task
def stamp() -> float:
    return time.time()


@app.task
def touch(path: str) -> str:
    Path(path).write_text("ran")
    return "ran"


@app.task
def record_label(path: str, label: str) -> str:
    append_record(path, label=label)
    return label


@app.task(priority=7)
def urgent_label(path: str, label: str) -> str:
    append_record(path, label=label)
    return label


@app.task(bind=True)
def where(self: Any) -> dict[str, Any]:
    return {
        "queue": self.request.delivery_info.get("queue"),
        "hostname": self.request.hostname,
        "pid": os.getpid(),
    }


@app.task
def whoami() -> int:
    return os.getpid()


@app.task(bind=True)
def crash_until(self: Any, marker: str, log_path: str) -> str:
    """Notes each run, then kills its own process (as a segfault or the OOM killer would)
    until ``marker`` exists."""
    append_record(log_path, delivery_count=self.request.delivery_count)
    if not os.path.exists(marker):
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


if os.environ.get("SAMPLE_TASKS_LATE") == "1":

    @app.task(name="sample_tasks.late_feature")
    def late_feature(x: int) -> int:
        """Deployed only in workers started with SAMPLE_TASKS_LATE=1."""
        return x * 10
