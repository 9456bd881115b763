"""examples/fastapi_app works as its README says, on SQLite and on Redis: the FastAPI app is
called through httpx's ASGI transport, and a real ``conveyor worker`` runs its tasks."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fastapi_app"

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 60)

    return asyncio.run(bounded())


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'quotes.db'}"
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    return f"{redis_url}?prefix={prefix}"


def _forget_example() -> None:
    for name in [m for m in sys.modules if m == "quotes" or m.startswith("quotes.")]:
        del sys.modules[name]


@pytest.fixture
def api(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example's API module, its app on this test's broker, with a worker running."""
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    _forget_example()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_BROKER_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLE), env.get("PYTHONPATH")]))
    log_path = tmp_path / "worker.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "-A", "quotes.tasks:app", "-c", "2"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    module = importlib.import_module("quotes.api")
    try:
        yield module
    finally:
        module.app.close()
        _forget_example()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()
        if worker.returncode != 0:
            print(log_path.read_text(errors="replace"))


def client(api: ModuleType) -> Any:
    transport = httpx.ASGITransport(app=api.api)
    return httpx.AsyncClient(transport=transport, base_url="http://quotes.test")


def test_an_endpoint_sends_a_task_and_awaits_its_result(api: ModuleType) -> None:
    async def main() -> list[Any]:
        async with client(api) as http:
            found = await http.post("/quotes", json={"sku": "lamp", "quantity": 3})
            missing = await http.post("/quotes", json={"sku": "sofa"})
            return [found.status_code, found.json(), missing.status_code, missing.json()]

    found_status, found, missing_status, missing = run(main())
    assert (found_status, found) == (200, {"sku": "lamp", "quantity": 3, "total": "120.00"})
    assert missing_status == 404  # the task's UnknownProduct, raised again by aget()
    assert "no product 'sofa'" in missing["detail"]


def test_requests_are_served_while_others_await_results(api: ModuleType) -> None:
    """Twenty quotes awaited at once, over one event loop: each gets its own answer."""

    async def main() -> list[Any]:
        async with client(api) as http:
            replies = await asyncio.gather(
                *(http.post("/quotes", json={"sku": "book", "quantity": n}) for n in range(1, 21))
            )
            return [(r.status_code, r.json()["total"]) for r in replies]

    assert run(main()) == [(200, f"{12.5 * n:.2f}") for n in range(1, 21)]


def test_a_report_is_sent_then_polled_and_awaited_by_id(api: ModuleType) -> None:
    async def main() -> list[Any]:
        async with client(api) as http:
            started = await http.post("/reports", json={"customer": "Ada", "pages": 3})
            task_id = started.json()["task_id"]
            waited = await http.get(f"/reports/{task_id}/result", params={"timeout": 20})
            status = await http.get(f"/reports/{task_id}")
            unknown = await http.get("/reports/no-such-id")
            return [started.status_code, waited.json(), status.json(), unknown.status_code]

    started, waited, status, unknown = run(main())
    assert started == 202
    assert waited["report"] == "report for Ada: 3 pages"
    assert status["state"] == "SUCCESS" and status["info"] == "report for Ada: 3 pages"
    assert unknown == 404


def test_a_wait_that_times_out_answers_504_and_the_report_can_be_cancelled(
    api: ModuleType,
) -> None:
    async def main() -> list[Any]:
        async with client(api) as http:
            started = await http.post("/reports", json={"customer": "Bo", "pages": 3000})
            task_id = started.json()["task_id"]
            while (await http.get(f"/reports/{task_id}")).json()["state"] != "PROGRESS":
                await asyncio.sleep(0.01)
            late = await http.get(f"/reports/{task_id}/result", params={"timeout": 0.2})
            cancelled = await http.delete(f"/reports/{task_id}")
            final = await http.get(f"/reports/{task_id}/result", params={"timeout": 20})
            return [late.status_code, late.json(), cancelled.status_code, final.json()]

    late_status, late, cancelled, final = run(main())
    assert late_status == 504 and "not done after 0.2s (PROGRESS)" in late["detail"]
    assert cancelled == 202
    assert "cancelled after" in final["report"]
