"""The async no-op for arq (bench/async_peers.py): ``arq async_tasks_arq.WorkerSettings``.

The Redis URL comes from ``BENCH_ARQ_URL``. ``max_jobs`` matches Conveyor's default
``--async-concurrency`` (100); ``poll_delay`` is cut from arq's 0.5 s to 5 ms, or arq's
worker would look for new jobs only twice a second.
"""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings

URL = os.environ.get("BENCH_ARQ_URL", "redis://127.0.0.1:6379/0")


async def noop(ctx: dict[str, Any]) -> None:
    return None


class WorkerSettings:
    functions = [noop]  # arq reads class attributes
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = 100
    poll_delay = 0.005
    keep_result = 3600
