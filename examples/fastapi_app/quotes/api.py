"""The web API: every Conveyor call here is awaited, so a request waiting for a task never
stops the event loop from serving the others.

Run it with ``uvicorn quotes.api:api`` (from examples/fastapi_app) beside a worker.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from conveyor.exceptions import TimeoutError

from .tasks import UnknownProduct, app, build_report, price_quote

api = FastAPI(title="quotes")


class QuoteRequest(BaseModel):
    sku: str
    quantity: int = 1


class ReportRequest(BaseModel):
    customer: str
    pages: int = 5


@api.post("/quotes")
async def quote(request: QuoteRequest) -> dict[str, Any]:
    """Send a task and await its result in the same request."""
    result = await price_quote.adelay(request.sku, request.quantity)
    try:
        found = await result.aget(timeout=10)
    except UnknownProduct as exc:
        raise HTTPException(404, str(exc)) from None
    except TimeoutError:
        raise HTTPException(504, "no worker answered within 10 s") from None
    return {"sku": found.sku, "quantity": found.quantity, "total": str(found.total)}


@api.post("/reports", status_code=202)
async def start_report(request: ReportRequest) -> dict[str, str]:
    """Send a task and answer at once with its id."""
    result = await build_report.adelay(request.customer, request.pages)
    return {"task_id": result.id}


@api.get("/reports/{task_id}")
async def report_status(task_id: str) -> dict[str, Any]:
    """The task's state, its progress while it runs and its value once done."""
    result = app.AsyncResult(task_id)
    state = await result.astate()
    if state == "UNKNOWN":
        raise HTTPException(404, f"no report {task_id}")
    return {"task_id": task_id, "state": state, "info": await result.ainfo()}


@api.get("/reports/{task_id}/result")
async def report_result(task_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Await the task's value, at most ``timeout`` seconds (504 when it is not done)."""
    result = app.AsyncResult(task_id)
    try:
        value = await result.aget(timeout=timeout)
    except TimeoutError:
        state = await result.astate()
        raise HTTPException(504, f"report {task_id} not done after {timeout}s ({state})") from None
    return {"task_id": task_id, "report": value}


@api.delete("/reports/{task_id}", status_code=202)
async def cancel_report(task_id: str) -> dict[str, str]:
    """Revoke the task: a running report stops between pages (``is_aborted()``)."""
    await app.AsyncResult(task_id).arevoke()
    return {"task_id": task_id, "state": "revoking"}
