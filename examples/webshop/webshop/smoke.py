"""Drive the web handler in-process against a running worker and print what happens."""

from __future__ import annotations

import json
import time
from typing import Any

from .web import application


def call(method: str, path: str, query: str = "") -> tuple[str, dict[str, Any]]:
    status: list[str] = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": query}
    body = b"".join(application(environ, lambda s, h: status.append(s)))
    return status[0], json.loads(body)


def main() -> None:
    status, body = call("POST", "/orders", "sku=book&quantity=2&email=ada@example.com")
    print(status, body)
    task_id = body["task_id"]
    deadline = time.monotonic() + 30
    last = None
    while time.monotonic() < deadline:
        _, state = call("GET", f"/tasks/{task_id}")
        if state != last:
            print(state)
            last = state
        if state["state"] in ("SUCCESS", "FAILURE"):
            break
        time.sleep(0.1)


if __name__ == "__main__":
    main()
