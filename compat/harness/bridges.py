"""Stop-gaps for Conveyor gaps that would stop Celery's test modules from importing at all.

Celery's test task module uses ``@shared_task(pydantic=True)`` at module level; while
Conveyor lacks it, importing the module fails and no test of the file can run. So, only
while it is missing, the name is accepted and does nothing (the tests that rely on it
still fail), and a note says so. Each stop-gap checks first and does nothing once
Conveyor has the feature.

One more is about the environment, not Conveyor: the Redis clients of Celery's test
helpers get back the unbounded reads they were written for (``_test_redis_clients_wait``).
"""

from __future__ import annotations

from typing import Any

from .notes import note

__all__ = ["apply"]

TASK_OPTIONS_USED = ("pydantic",)
"""Task options that Celery's test task modules pass at import time."""


def _accept_task_options() -> None:
    import conveyor.options
    from conveyor import shared_task
    from conveyor.exceptions import ImproperlyConfigured

    for option in TASK_OPTIONS_USED:
        try:
            shared_task(**{option: True})
        except ImproperlyConfigured as exc:
            note("task option refused", option, f"{exc}; accepted and ignored by the harness")
            conveyor.options.TASK_OPTIONS |= {option}  # what @app.task and @shared_task check


def _test_redis_clients_wait() -> None:
    """Not a Conveyor gap: Celery's test helpers make their Redis client as
    ``StrictRedis(host, port)`` and wait on it with ``BLPOP`` for up to 60 s, written when
    redis-py set no read timeout. redis-py 8 defaults to 5 s (and retries), so each such
    wait failed after about a minute with "Timeout reading from ...". Their clients get
    redis-py's old default back; Conveyor's own connections never use ``StrictRedis``."""
    import redis

    if getattr(redis.StrictRedis, "compat_unbounded_reads", False):
        return

    class StrictRedis(redis.Redis):
        compat_unbounded_reads = True

        def __init__(self, *args: Any, socket_timeout: float | None = None, **kwargs: Any):
            kwargs["socket_timeout"] = socket_timeout
            super().__init__(*args, **kwargs)

    redis.StrictRedis = StrictRedis


def apply() -> None:
    _accept_task_options()
    _test_redis_clients_wait()
