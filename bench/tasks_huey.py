"""The benchmark's no-op task for Huey: ``SqliteHuey``, or ``RedisHuey`` with ``--broker redis``.

Like ``tasks_conveyor``: the bench process calls ``make_huey`` per measurement, and the
consumer it starts loads ``tasks_huey.huey``, built on first access from the environment.
``store_none=True`` because Huey drops ``None`` results by default, and Conveyor stores
every result: without it the round trip could never see a result and the drain would
skip a write Conveyor does.

On Redis, ``notify_result=True`` is Huey's non-polling result wait: the consumer pushes to
a per-task list and a blocking ``get`` waits on it with BLPOP, instead of polling from
50 ms with backoff.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.storage import SqliteStorage

ENV_DB = "HUEY_BENCH_DB"
ENV_SYNC = "HUEY_BENCH_SYNCHRONOUS"
ENV_URL = "HUEY_BENCH_URL"


class NormalSyncStorage(SqliteStorage):  # type: ignore[misc]
    """SqliteStorage at ``synchronous=NORMAL``, Conveyor's setting, so durability is equal.

    Huey can only choose FULL (its default) or OFF through ``fsync``.
    """

    def _create_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


def make_huey(db_path: str, synchronous: str = "normal") -> tuple[SqliteHuey, Any]:
    """A SqliteHuey on ``db_path`` and its no-op task; ``synchronous`` is normal or full."""
    storage = NormalSyncStorage if synchronous == "normal" else SqliteStorage
    huey = SqliteHuey(
        "bench", filename=os.path.abspath(db_path), store_none=True, storage_class=storage
    )

    @huey.task(name="bench.noop")  # type: ignore[untyped-decorator]
    def noop() -> None:
        return None

    return huey, noop


def make_redis_huey(url: str) -> tuple[RedisHuey, Any]:
    """A RedisHuey on ``url`` (results in the same database) and its no-op task."""
    huey = RedisHuey("bench", url=url, store_none=True, notify_result=True)

    @huey.task(name="bench.noop")  # type: ignore[untyped-decorator]
    def noop() -> None:
        return None

    return huey, noop


def __getattr__(name: str) -> Any:
    """Build ``huey``/``noop`` lazily so only a process that sets the DB path opens one."""
    if name not in ("huey", "noop"):
        raise AttributeError(name)
    url, path = os.environ.get(ENV_URL), os.environ.get(ENV_DB)
    if url:
        globals()["huey"], globals()["noop"] = make_redis_huey(url)
    elif path:
        globals()["huey"], globals()["noop"] = make_huey(path, os.environ.get(ENV_SYNC, "normal"))
    else:
        raise RuntimeError(f"set {ENV_DB} (SQLite file) or {ENV_URL} (Redis URL) for the consumer")
    return globals()[name]
