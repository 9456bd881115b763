"""The benchmark's no-op task for Conveyor.

The bench process builds one app per measurement with ``make_app`` so every measurement
gets a fresh database file; the worker it starts loads ``tasks_conveyor:app``, which is
built on first access from ``$CONVEYOR_BENCH_DB`` (importing this module opens nothing).
"""

from __future__ import annotations

import os
from typing import Any

from conveyor import Conveyor

ENV_DB = "CONVEYOR_BENCH_DB"
TASK_NAME = "bench.noop"


def make_app(db_path: str) -> tuple[Conveyor, Any]:
    """An app whose broker and results share ``db_path``, and its registered no-op task."""
    app = Conveyor("bench", broker=f"sqlite:///{os.path.abspath(db_path)}", set_as_current=False)

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
        raise RuntimeError(f"set {ENV_DB} to the SQLite file the worker should use")
    globals()["app"], globals()["noop"] = make_app(path)
    return globals()[name]
