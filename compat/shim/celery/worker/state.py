"""``celery.worker.state``: the in-process worker's global state (revoked ids, active
requests). Conveyor's worker runs in its own processes, so any attribute is a stand-in."""

from typing import Any

from celery._bridge import missing


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return missing(f"celery.worker.state.{name}", [])
