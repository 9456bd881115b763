"""``Worker``: what ``conveyor worker`` starts: the pool its options choose, run until stopped."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from .. import signals
from ..app import Conveyor
from ..brokers import redact_url
from ..exceptions import ImproperlyConfigured
from .prefork import PreforkPool

__all__ = ["POOLS", "Worker"]

POOLS = ("prefork", "threads", "solo", "asyncio")
"""``asyncio``: one process whose consumer runs ``async def`` tasks on an event loop it runs
itself, on its own thread, while it waits (no thread hand-off), and runs any ``def`` task
itself, as ``solo`` (see docs/async.md)."""

logger = logging.getLogger("conveyor.worker")


class Worker:
    """``conveyor worker`` in code: ``Worker(app, queues=["default"], concurrency=4).run()``."""

    def __init__(
        self,
        app: Conveyor,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        hostname: str | None = None,
        prefetch_multiplier: int | None = None,
        max_tasks_per_child: int | None = None,
    ) -> None:
        conf = app.conf
        self.app = app
        self.queues = app.router.worker_queues(queues)  # -Q, else task_queues (Celery's)
        self.concurrency = concurrency or conf.worker_concurrency or os.cpu_count() or 1
        self.pool = pool or conf.worker_pool
        if self.pool not in POOLS:
            raise ImproperlyConfigured(
                f"unknown pool {self.pool!r}: choose one of {', '.join(POOLS)}"
            )
        self.hostname = hostname or app.hostname
        self.prefetch = prefetch_multiplier or conf.worker_prefetch_multiplier
        self.max_tasks_per_child = max_tasks_per_child or conf.worker_max_tasks_per_child
        if self.pool == "prefork" and app.broker_url.startswith("memory://"):
            raise ImproperlyConfigured(
                "the memory:// broker lives in one process: use --pool threads or --pool solo"
            )

    def banner(self) -> str:
        tasks = sorted(name for name in self.app.tasks if not name.startswith("conveyor."))
        lines = [
            f"conveyor worker {self.hostname}",
            f"  app:         {self.app.main or '__main__'}",
            f"  broker:      {redact_url(self.app.broker_url)}",
            f"  results:     {redact_url(self.app.backend.url or type(self.app.backend).__name__)}",
            f"  queues:      {', '.join(self.queues)}",
            f"  pool:        {self.pool} x {self._processes()}",
            f"  async:       {self.app.conf.worker_async_concurrency} in flight per process",
            f"  tasks ({len(tasks)}):",
            *[f"    . {name}" for name in tasks],
        ]
        return "\n".join(lines)

    def _processes(self) -> int:
        return 1 if self.pool in ("solo", "asyncio") else self.concurrency

    def run(self) -> int:
        import multiprocessing

        process = multiprocessing.current_process()
        process.name = "Worker" if self.app.broker_url.startswith("memory://") else "Supervisor"
        self.app.import_includes()
        logger.info("%s", self.banner())
        for warning in self.app.broker.check_config():
            logger.warning("%s", warning)
        signals.worker_init.send(sender=self)
        try:
            return self._run_pool()
        finally:
            signals.worker_shutdown.send(sender=self)

    def _run_pool(self) -> int:
        if not self.app.broker_url.startswith("memory://"):
            return PreforkPool(
                self.app,
                self.queues,
                self.concurrency,
                self.hostname,
                self.prefetch,
                self.max_tasks_per_child,
                child_pool=self.pool,
            ).run()
        from .local import LocalPool  # only the memory:// broker's workers run in-process

        return LocalPool(
            self.app,
            self.queues,
            self.concurrency,
            self.hostname,
            self.prefetch,
            solo=self.pool in ("solo", "asyncio"),
        ).run()
