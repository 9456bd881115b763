"""A web handler that answers at once: the slow work goes to a task.

POST /orders?sku=&quantity=&email=   -> 202 {"task_id": ...}
GET  /tasks/<id>                     -> {"state": ..., "progress": ..., "result": ...}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server

from .services import OrderRequest
from .tasks import app, place_order

PRICES = {"book": Decimal("12.50"), "pen": Decimal("1.20")}


def _json(start: Callable[..., Any], status: str, body: dict[str, Any]) -> Iterable[bytes]:
    start(status, [("Content-Type", "application/json")])
    return [json.dumps(body, default=str).encode()]


def application(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if method == "POST" and path == "/orders":
        sku = query.get("sku", "book")
        order = OrderRequest(sku, int(query.get("quantity", 1)), query["email"], PRICES[sku])
        result = place_order.delay(order)
        return _json(start, "202 Accepted", {"task_id": result.id})
    if method == "GET" and path.startswith("/tasks/"):
        result = app.AsyncResult(path.removeprefix("/tasks/"))
        body: dict[str, Any] = {"state": result.state}
        if result.state == "PROGRESS":
            info = result.info
            body["progress"] = int(100 * info["current"] / info["total"])
        elif result.successful():
            body["result"] = result.result
        elif result.failed():
            body["error"] = str(result.info)
        return _json(start, "200 OK", body)
    return _json(start, "404 Not Found", {"error": f"no route {method} {path}"})


if __name__ == "__main__":
    with make_server("127.0.0.1", 8000, application) as server:
        print("serving on http://127.0.0.1:8000")
        server.serve_forever()
