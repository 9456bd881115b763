"""``conveyor demo``: a real worker on a temporary embedded broker, running example tasks.

The tasks below are also the smallest tour of the API: a dataclass argument, a retry,
progress reports, a countdown and a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from . import states
from .app import Conveyor
from .exceptions import ConveyorError
from .log import get_task_logger
from .result import AnyResult
from .task import AnyTask

__all__ = ["app", "run_demo"]

app = Conveyor("demo")
logger = get_task_logger(__name__)


@dataclass
class Thumbnail:
    image_url: str
    width: int
    height: int


class PaymentDeclined(Exception):
    pass


@app.task
def make_thumbnail(job: Thumbnail) -> str:
    """The argument arrives as a Thumbnail, not a dict."""
    time.sleep(0.2)
    name = job.image_url.rsplit("/", 1)[-1]
    return f"{name} resized to {job.width}x{job.height}"


@app.task(bind=True, max_retries=3)
def call_flaky_api(self: AnyTask, endpoint: str) -> str:
    """Fails twice with a connection error, then succeeds on the third attempt."""
    request = self.request
    if request.retries < 2:
        exc = ConnectionError(f"{endpoint}: connection reset (attempt {request.retries + 1})")
        raise self.retry(exc=exc, countdown=0.5)
    return f"{endpoint}: 200 OK after {request.retries} retries"


@app.task(bind=True)
def import_contacts(self: AnyTask, count: int) -> dict[str, int]:
    """Reports PROGRESS with current/total while it works."""
    for i in range(count):
        time.sleep(0.08)
        self.update_state(state="PROGRESS", meta={"current": i + 1, "total": count})
    return {"imported": count}


@app.task
def send_reminder(email: str, sent_at: float) -> str:
    return f"reminder to {email}, {time.time() - sent_at:.1f}s after it was sent"


@app.task
def charge_card(order_id: int, amount_cents: int) -> None:
    raise PaymentDeclined(f"order {order_id}: card declined for {amount_cents / 100:.2f} EUR")


def _say(start: float, text: str) -> None:
    print(f"[{time.monotonic() - start:5.2f}s] {text}", flush=True)


def _wait_ready(worker: subprocess.Popen[bytes], start: float) -> None:
    probe = make_thumbnail.delay(Thumbnail("https://example.com/warmup.png", 1, 1))
    deadline = time.monotonic() + 30
    while not probe.ready():
        if worker.poll() is not None:
            raise ConveyorError(f"the worker exited with {worker.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise ConveyorError("the worker did not start within 30 s")
        time.sleep(0.05)
    _say(start, "worker is up and consuming")


def run_demo(concurrency: int = 2) -> int:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="conveyor-demo-") as tmp:
        url = f"sqlite:///{os.path.join(tmp, 'demo.db')}"
        app.conf.broker_url = url
        app.conf.result_backend = url
        env = {**os.environ, "CONVEYOR_BROKER_URL": url, "CONVEYOR_RESULT_BACKEND": url}
        _say(start, f"embedded broker: {url}")
        command = [
            sys.executable,
            "-m",
            "conveyor",
            "worker",
            "-A",
            "conveyor.demo:app",
            "-c",
            str(concurrency),
            "-l",
            "WARNING",
        ]
        _say(start, "starting: " + " ".join(command[1:]))
        log_path = os.path.join(tmp, "worker.log")
        log = open(log_path, "wb")  # noqa: SIM115 - closed below, after the worker exits
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(worker, start)
            code = _tour(start)
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(20)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            log.close()
        _say(start, f"worker stopped (warm shutdown, exit code {worker.returncode})")
        with open(log_path, encoding="utf-8", errors="replace") as text:
            lines = text.read().splitlines()
        print(f"\nthe worker's log ({len(lines)} lines, level WARNING):")
        for line in lines:
            print(f"  | {line}")
        app.close()
    return code


def _tour(start: float) -> int:
    sent: dict[str, AnyResult] = {}
    sent["thumbnail"] = make_thumbnail.delay(Thumbnail("https://example.com/cat.png", 320, 240))
    _say(start, "sent make_thumbnail(Thumbnail(...)): a dataclass argument")
    sent["flaky api"] = call_flaky_api.delay("https://api.example.com/orders")
    _say(start, "sent call_flaky_api(...): fails twice, retried with countdown=0.5")
    sent["progress"] = import_contacts.delay(12)
    _say(start, "sent import_contacts(12): reports PROGRESS as it goes")
    sent["countdown"] = send_reminder.apply_async(["ada@example.com", time.time()], countdown=2)
    _say(start, "sent send_reminder(...) with countdown=2: waits in the broker, not in a worker")
    sent["failure"] = charge_card.delay(1042, 4999)
    _say(start, "sent charge_card(1042, 4999): raises PaymentDeclined")

    seen: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while len([n for n in sent if seen.get(n) in states.READY_STATES]) < len(sent):
        for label, result in sent.items():
            state = result.state
            info = result.info if state == "PROGRESS" else None
            key = f"{state}{info}" if info else state
            if seen.get(label) != key:
                seen[label] = key
                if state == "PROGRESS" and isinstance(info, dict):
                    _say(start, f"{label:<10} PROGRESS {info['current']}/{info['total']}")
                elif state == states.SUCCESS:
                    _say(start, f"{label:<10} SUCCESS  -> {result.get()!r}")
                elif state == states.FAILURE:
                    _say(
                        start,
                        f"{label:<10} FAILURE  -> {type(result.info).__name__}: {result.info}",
                    )
                else:
                    _say(start, f"{label:<10} {state}")
                seen[label] = state if state in states.READY_STATES else key
        if time.monotonic() > deadline:
            _say(start, "gave up waiting after 60 s")
            return 1
        time.sleep(0.05)
    failed_as_expected = isinstance(sent["failure"].info, PaymentDeclined)
    ok = failed_as_expected and all(
        sent[n].successful() for n in ("thumbnail", "flaky api", "progress", "countdown")
    )
    _say(start, "all tasks finished as expected" if ok else "some tasks did not end as expected")
    return 0 if ok else 1
