"""Real ``conveyor worker`` processes for Celery's worker fixtures.

Celery's ``celery_session_worker`` runs a worker in a thread of the test process; here it is
a separate ``conveyor worker`` process (the project's own test helper starts and stops it),
loading ``harness.worker_app``, which rebuilds the test app from the same configuration and
imports the same task modules. So the tests exercise Conveyor's real worker, but a signal
receiver connected in the test process does not see what happens inside the worker.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.integration.support import WorkerProcess  # noqa: E402

__all__ = ["ManagedWorker", "restart_running", "start_worker"]

_names = itertools.count(1)


def _class_path(task: Any) -> str:
    cls = task if isinstance(task, type) else type(task)
    return f"{cls.__module__}:{cls.__qualname__}"


def _arguments(pool: str, parameters: Mapping[str, Any]) -> list[str]:
    """Celery's ``start_worker`` parameters as ``conveyor worker`` flags (concurrency 1 and
    the default queue unless given, as Celery's testing worker)."""
    if pool not in ("prefork", "threads", "solo"):
        raise ValueError(
            f"celery_worker_pool is {pool!r}: Conveyor's pools are prefork, threads and solo"
        )
    args = ["-P", pool, "-c", str(parameters.get("concurrency", 1))]
    queues = parameters.get("queues")
    if queues:
        args += ["-Q", queues if isinstance(queues, str) else ",".join(queues)]
    return args


class ManagedWorker:
    """A worker process that can be replaced by a fresh one with the same arguments."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path) -> None:
        self.args, self.env, self.workdir = args, env, workdir
        self.process = self._spawn()

    def _spawn(self) -> WorkerProcess:
        name = f"compat{next(_names)}"
        worker = WorkerProcess(
            name,
            self.args,
            self.env,
            cwd=self.workdir,
            log_path=self.workdir / f"worker-{name}.log",
            app_spec="harness.worker_app:app",
        )
        worker.wait_ready(timeout=60)
        return worker

    def restart(self) -> None:
        self.process.stop(grace=5.0)
        self.process = self._spawn()

    def stop(self) -> None:
        self.process.stop()


_running: list[ManagedWorker] = []


def restart_running() -> None:
    """Replace every running worker: after a test ran past its bound, what it left running
    (a task that never ends, a full prefetch) must not fail the tests after it."""
    for worker in _running:
        worker.restart()


@contextmanager
def start_worker(
    config: Mapping[str, Any],
    includes: Sequence[str],
    class_tasks: Sequence[Any],
    pool: str,
    parameters: Mapping[str, Any],
) -> Iterator[ManagedWorker]:
    """A worker process for the app described by ``config``; stopped (warm, then killed)
    when the block ends."""
    workdir = Path(os.environ.get("COMPAT_WORKDIR") or Path.cwd())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and Path(p).is_dir()),
            "COMPAT_CONFIG": json.dumps(dict(config), default=str),
            "COMPAT_INCLUDES": json.dumps(list(includes)),
            "COMPAT_CLASS_TASKS": json.dumps([_class_path(t) for t in class_tasks]),
        }
    )
    worker = ManagedWorker(_arguments(pool, parameters), env, workdir)
    _running.append(worker)
    try:
        yield worker
    finally:
        _running.remove(worker)
        worker.stop()
