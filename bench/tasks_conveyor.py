"""The benchmark's no-op task for Conveyor.

The bench process builds one app per measurement with ``make_app`` so every measurement
gets a fresh database (a new SQLite file, or a new Redis database number); the worker it
starts loads ``tasks_conveyor:app``, which is built on first access from
``$BENCH_CONVEYOR_DB`` (importing this module opens nothing).
"""

from __future__ import annotations

import os
from typing import Any

from conveyor import Conveyor

ENV_DB = "BENCH_CONVEYOR_DB"
TASK_NAME = "bench.noop"


def make_app(location: str) -> tuple[Conveyor, Any]:
    """An app whose broker and results share ``location``, and its registered no-op task.

    ``location`` is a SQLite file path, or a URL such as ``redis://127.0.0.1:6380/3``.
    """
    url = location if "://" in location else f"sqlite:///{os.path.abspath(location)}"
    app = Conveyor("bench", broker=url, set_as_current=False)

    @app.task(name=TASK_NAME)
    def noop() -> None:
        return None

    return app, noop


def __getattr__(name: str) -> Any:
    """Build ``app``/``noop`` lazily so only a process that sets the DB path opens one."""
    if name not in ("app", "noop"):
        raise AttributeError(name)
    path = os.environ.get(ENV_DB)
    if not path:
        raise RuntimeError(f"set {ENV_DB} to the SQLite file or Redis URL the worker should use")
    globals()["app"], globals()["noop"] = make_app(path)
    return globals()[name]
