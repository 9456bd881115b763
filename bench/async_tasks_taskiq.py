"""The async no-op for Taskiq (bench/async_peers.py):
``taskiq worker async_tasks_taskiq:broker --workers 1 --max-async-tasks 100``.

taskiq-redis's ListQueueBroker (a Redis list, BRPOP) with its Redis result backend; the
URL comes from ``BENCH_TASKIQ_URL``.
"""

from __future__ import annotations

import os

from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

URL = os.environ.get("BENCH_TASKIQ_URL", "redis://127.0.0.1:6379/0")
QUEUE = "bench-taskiq"

broker = ListQueueBroker(URL, queue_name=QUEUE).with_result_backend(
    RedisAsyncResultBackend(URL, result_ex_time=3600)
)


@broker.task(task_name="noop")
async def noop() -> None:
    return None
