#!/usr/bin/env python
"""A feasibility prototype for issue 18, not a worker: a consumer that runs on the event
loop's own thread, so an ``async def`` task needs no hand-off between threads.

It reserves, awaits the task and stores its success with the app's own broker and result
store (blocking calls on the loop thread: fine with one task in flight, which is what a
round trip measures), and nothing else: no supervisor, guards, signals, events, retries or
time limits. Run it in place of ``conveyor worker -A async_bench:app -c 1`` and measure
round trips against it as against the worker (bench/README.md, "An asyncio-native
consumer, prototyped"):

    BENCH_ASYNC_URL=redis://127.0.0.1:6379/15 python bench/async_loop_proto.py
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from async_bench import ENV_URL, make_app

from conveyor import states
from conveyor.brokers.base import Delivery
from conveyor.records import TaskRecord, fence
from conveyor.serialization import decode_message


async def consume(url: str) -> None:
    app = make_app(url)
    broker, results = app.broker, app.results
    acks: list[Delivery] = []
    while True:
        _, batch = broker.ack_and_reserve(acks, ["default"], 4, 30.0)
        acks = []
        if not batch:
            broker.wait(0.05)
            continue
        for delivery in batch:
            message = decode_message(delivery.body)
            value = await app.tasks[message.task].run(*message.args, **message.kwargs)
            record = TaskRecord(status=states.SUCCESS, result=value, task=message.task)
            attempt = fence(message.retries, delivery.delivery_count, resends=delivery.resends)
            reply = (message.reply_to or "") if message.reply else None
            results.write(message.id, record, attempt, reply)
            acks.append(delivery)


def main() -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(consume(os.environ[ENV_URL]))
    else:
        uvloop.run(consume(os.environ[ENV_URL]))


if __name__ == "__main__":
    main()
