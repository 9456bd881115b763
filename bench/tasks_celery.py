"""The benchmark's no-op task for Celery 5, with Redis as broker and result backend.

Like ``tasks_conveyor``: the bench process calls ``make_app`` per measurement, and the
worker it starts (``celery -A tasks_celery:app worker ...``) loads ``app``, built on first
access from ``$CELERY_BENCH_URL`` (importing this module connects to nothing).

Everything else is Celery's default: JSON messages, the worker's prefetch multiplier (4),
acks before the task runs, results kept for a day.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

ENV_URL = "CELERY_BENCH_URL"
TASK_NAME = "bench.noop"


def make_app(url: str) -> tuple[Celery, Any]:
    """A Celery app whose broker and result backend are both ``url``, and its no-op task."""
    app = Celery("bench", broker=url, backend=url, set_as_current=False)
    # Only silences the 5.x deprecation warning; retrying at start-up is the default.
    app.conf.broker_connection_retry_on_startup = True

    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
    def noop() -> None:
        return None

    return app, noop


def __getattr__(name: str) -> Any:
    """Build ``app``/``noop`` lazily so only a process that sets the URL connects."""
    if name not in ("app", "noop"):
        raise AttributeError(name)
    url = os.environ.get(ENV_URL)
    if not url:
        raise RuntimeError(f"set {ENV_URL} to the Redis URL the worker should use")
    globals()["app"], globals()["noop"] = make_app(url)
    return globals()[name]
