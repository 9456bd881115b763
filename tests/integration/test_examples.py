"""The README's main command and the shipped examples work as documented."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .support import wait_until

ROOT = Path(__file__).resolve().parents[2]
WEBSHOP = ROOT / "examples" / "webshop"


def test_conveyor_demo_runs_a_worker_and_every_example_task(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    run = subprocess.run(
        [sys.executable, "-m", "conveyor", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "worker is up and consuming" in out
    assert "SUCCESS  -> 'cat.png resized to 320x240'" in out
    assert "200 OK after 2 retries" in out
    assert "progress   PROGRESS " in out and "/12" in out
    assert "FAILURE  -> PaymentDeclined" in out
    assert "all tasks finished as expected" in out
    assert "exit code 0" in out
    assert not list(tmp_path.iterdir()), "the demo leaves nothing behind"


@pytest.fixture
def webshop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    monkeypatch.syspath_prepend(str(WEBSHOP))
    for name in [m for m in sys.modules if m == "webshop" or m.startswith("webshop.")]:
        del sys.modules[name]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(WEBSHOP), os.environ.get("PYTHONPATH", "")]),
    }
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "-A", "webshop.tasks:app", "-c", "2"],
        cwd=WEBSHOP,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield importlib.import_module("webshop.web")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()


def _call(web: ModuleType, method: str, path: str, query: str = "") -> tuple[str, dict[str, Any]]:
    status: list[str] = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": query}
    body = b"".join(web.application(environ, lambda s, h: status.append(s)))
    return status[0], json.loads(body)


def test_webshop_handler_hands_the_order_to_a_task(webshop: ModuleType) -> None:
    status, body = _call(webshop, "POST", "/orders", "sku=book&quantity=2&email=ada@example.com")
    assert status == "202 Accepted"
    task_id = body["task_id"]
    states: list[str] = []

    def finished() -> dict[str, Any] | None:
        _, state = _call(webshop, "GET", f"/tasks/{task_id}")
        if not states or states[-1] != state["state"]:
            states.append(state["state"])
        return state if state["state"] in ("SUCCESS", "FAILURE") else None

    final = wait_until(finished, timeout=30, what="the order task")
    assert final == {
        "state": "SUCCESS",
        "result": "charged 25.00 EUR to ada@example.com for 2 x book",
    }
    assert "RETRY" in states  # the payment provider refused once; the task retried
    invoices = webshop.app.broker.stats()
    deadline = time.monotonic() + 20
    while invoices and time.monotonic() < deadline:  # the class-based invoice task drains too
        time.sleep(0.1)
        invoices = webshop.app.broker.stats()
    assert invoices == {}
