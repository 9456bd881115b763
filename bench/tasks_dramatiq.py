"""The benchmark's no-op actor for Dramatiq, with Redis as broker and result backend.

The bench process calls ``make_broker`` per measurement; the worker it starts
(``dramatiq tasks_dramatiq:broker -p 1 -t 1``) loads ``broker``, built on first access
from ``$DRAMATIQ_BENCH_URL`` (importing this module connects to nothing).

The Results middleware with ``store_results=True`` makes Dramatiq store every return
value, as Conveyor and Celery do; Dramatiq does not store results otherwise.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

ENV_URL = "DRAMATIQ_BENCH_URL"
ACTOR_NAME = "bench_noop"


def make_broker(url: str) -> tuple[RedisBroker, RedisBackend, Any]:
    """A Redis broker with a Redis result backend on ``url``, and its no-op actor."""
    broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
    backend = RedisBackend(url=url)  # type: ignore[no-untyped-call]
    broker.add_middleware(Results(backend=backend))  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)

    @dramatiq.actor(actor_name=ACTOR_NAME, broker=broker, store_results=True)
    def noop() -> None:
        return None

    return broker, backend, noop


def __getattr__(name: str) -> Any:
    """Build ``broker``/``backend``/``noop`` lazily so only a process that sets the URL connects."""
    if name not in ("broker", "backend", "noop"):
        raise AttributeError(name)
    url = os.environ.get(ENV_URL)
    if not url:
        raise RuntimeError(f"set {ENV_URL} to the Redis URL the worker should use")
    built = make_broker(url)
    globals().update(zip(("broker", "backend", "noop"), built, strict=True))
    return globals()[name]
