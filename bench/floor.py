#!/usr/bin/env python
"""The host's floor for a round trip through Redis: what no task queue can beat on it.

A task's round trip crosses four wake-ups: the sender's command reaches Redis, Redis
hands the message to a sleeping worker, the worker's write reaches Redis, and Redis hands
the outcome to the sleeping sender. This times those four with nothing else: one process
RPUSHes a token and BLPOPs the answer, a second process BLPOPs the token and RPUSHes it
back (redis-py with hiredis, as the libraries under test use; no task queue), and a lone
PING for one wake-up each way. On a virtual machine whose idle CPUs halt, each wake-up
costs tens of microseconds (bench/README.md, "The host's floor"), so the round trip of
every library measured in a run is best read beside this figure from the same run.

    python bench/floor.py [--url redis://127.0.0.1:6379/15] [--count 3000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Sequence

import redis

STOP = b"stop"
BLOCK = 500  # echoes per block; the floor is the lowest block median


def _echo(url: str, inbox: str, outbox: str) -> None:
    client = redis.Redis.from_url(url)
    while True:
        popped = client.blpop([inbox], timeout=30)
        if popped is None or popped[1] == STOP:
            return
        client.rpush(outbox, popped[1])


def measure(url: str, count: int = 3000) -> dict[str, float]:
    """Milliseconds: a PING's p50, and a bare echo through a second process: the lowest p50
    of its blocks of 500 (a floor: the host's state moves it by half from one moment to the
    next) and the p90 of all, after a block of echoes not timed (a warm-up)."""
    client = redis.Redis.from_url(url)
    pings = []
    for _ in range(count):
        began = time.perf_counter()
        client.ping()
        pings.append(time.perf_counter() - began)
    inbox, outbox = (f"bench-floor:{uuid.uuid4().hex}:{side}" for side in ("in", "out"))
    echo = multiprocessing.get_context("spawn").Process(target=_echo, args=(url, inbox, outbox))
    echo.start()
    try:
        client.rpush(inbox, b"x")  # the echo process is up once it answers
        if client.blpop([outbox], timeout=30) is None:
            raise RuntimeError("the echo process did not answer within 30 s")
        for _ in range(BLOCK):
            client.rpush(inbox, b"x")
            client.blpop([outbox])
        echoes = []
        for _ in range(count):
            began = time.perf_counter()
            client.rpush(inbox, b"x")
            client.blpop([outbox])
            echoes.append(time.perf_counter() - began)
    finally:
        client.rpush(inbox, STOP)
        echo.join(10)
        if echo.is_alive():
            echo.kill()
        client.delete(inbox, outbox)
    blocks = [echoes[i : i + BLOCK] for i in range(0, len(echoes), BLOCK)]
    whole = [b for b in blocks if len(b) * 2 >= len(blocks[0])]  # not a short last block
    return {
        "ping_p50_ms": statistics.median(pings) * 1000,
        "echo_p50_ms": min(statistics.median(b) for b in whole) * 1000,
        "echo_p90_ms": statistics.quantiles(echoes, n=10, method="inclusive")[8] * 1000,
    }


def describe(floor: dict[str, float]) -> str:
    """One line for a bench's report."""
    return (
        f"host floor (bench/floor.py, this run): a bare redis-py echo through a second process "
        f"p50 {floor['echo_p50_ms']:.3f} ms (its best block; p90 {floor['echo_p90_ms']:.3f}), "
        f"a PING p50 {floor['ping_p50_ms']:.3f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args(argv)
    print(describe(measure(args.url, args.count)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
