"""The benchmark's no-op task for Huey (``SqliteHuey``), the embedded-SQLite peer.

Like ``tasks_conveyor``: the bench process calls ``make_huey`` per measurement, and the
consumer it starts loads ``tasks_huey.huey``, built on first access from the environment.
``store_none=True`` because Huey drops ``None`` results by default, and Conveyor stores
every result: without it the round trip could never see a result and the drain would
skip a write Conveyor does.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from huey import SqliteHuey
from huey.storage import SqliteStorage

ENV_DB = "HUEY_BENCH_DB"
ENV_SYNC = "HUEY_BENCH_SYNCHRONOUS"


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


def __getattr__(name: str) -> Any:
    """Build ``huey``/``noop`` lazily so only a process that sets the DB path opens one."""
    if name not in ("huey", "noop"):
        raise AttributeError(name)
    path = os.environ.get(ENV_DB)
    if not path:
        raise RuntimeError(f"set {ENV_DB} to the SQLite file the consumer should use")
    globals()["huey"], globals()["noop"] = make_huey(path, os.environ.get(ENV_SYNC, "normal"))
    return globals()[name]
