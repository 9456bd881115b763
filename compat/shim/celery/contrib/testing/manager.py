"""``celery.contrib.testing.manager``: Celery's ``Manager`` of integration tests.

The same methods and meanings, built on Conveyor: results are awaited through result
handles, "idle" is read from the broker (nothing ready or reserved) rather than from
``inspect().active()``, and what needs the remote ``inspect`` API calls Conveyor's if it
has one and otherwise fails with ``MissingFeature``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from celery import states
from celery._bridge import MissingFeature
from celery.exceptions import TimeoutError
from celery.result import ResultSet

__all__ = ["Manager", "ManagerMixin", "Sentinel"]

IDLE_TIMEOUT = 10.0
"""How long ``wait_until_idle`` waits for running tasks to finish before giving up quietly
(the next test then shares the worker with them, as it would under Celery)."""


class Sentinel(Exception):
    """Raised by ``true_or_raise`` while a condition does not hold yet."""


class ManagerMixin:
    app: Any

    def _init_manager(self, block_timeout: float = 30 * 60.0, no_join: bool = False) -> None:
        self.block_timeout = block_timeout
        self.no_join = no_join

    def remark(self, s: str, sep: str = "-") -> None:
        print(f"{sep}{s}", flush=True)

    def missing_results(self, r: Iterable[Any]) -> list[str]:
        return [res.id for res in r if not res.ready()]

    def wait_for(
        self,
        fun: Callable[[], Any],
        catch: Sequence[type[BaseException]],
        desc: str = "thing",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        errback: Callable[..., Any] | None = None,
        max_retries: int = 10,
        interval_start: float = 0.1,
        interval_step: float = 0.5,
        interval_max: float = 5.0,
        emit_warning: bool = False,
        **options: Any,
    ) -> Any:
        """Call ``fun`` until it stops raising one of ``catch`` (Celery's retry policy)."""
        interval = interval_start
        for attempt in range(max_retries + 1):
            try:
                return fun(*args, **(kwargs or {}))
            except tuple(catch) as exc:
                if attempt == max_retries:
                    raise AssertionError(f"Test failed: {desc}: {exc!r}") from exc
                if errback is not None:
                    errback(exc, interval, attempt)
                time.sleep(interval)
                interval = min(interval + interval_step, interval_max)
        raise AssertionError(f"Test failed: {desc}")

    def ensure_not_for_a_while(
        self,
        fun: Callable[[], Any],
        catch: Sequence[type[BaseException]],
        desc: str = "thing",
        max_retries: int = 20,
        interval_start: float = 0.1,
        interval_step: float = 0.02,
        interval_max: float = 1.0,
        emit_warning: bool = False,
        **options: Any,
    ) -> None:
        try:
            self.wait_for(
                fun,
                catch,
                desc=desc,
                max_retries=max_retries,
                interval_start=interval_start,
                interval_step=interval_step,
                interval_max=interval_max,
            )
        except AssertionError:
            return
        raise AssertionError(f"Should not have happened: {desc}")

    def join(self, r: Any, propagate: bool = False, max_retries: int = 10, **kwargs: Any) -> Any:
        if self.no_join:
            return None
        if not isinstance(r, ResultSet):
            r = self.app.ResultSet([r])
        last: BaseException | None = None
        for _ in range(max_retries or 1):
            try:
                return r.get(propagate=propagate, **kwargs)
            except TimeoutError as exc:
                last = exc
                self.remark(f"Still waiting for {self.missing_results(r)}: {exc!r}", "!")
        raise AssertionError("Test failed: Missing task results") from last

    def inspect(self, timeout: float = 3.0) -> Any:
        inspect = getattr(self.app.control, "inspect", None)
        if inspect is None:
            raise MissingFeature(
                "app.control.inspect (remote ping/active/reserved/query_task) has no "
                "Conveyor counterpart"
            )
        return inspect(timeout=timeout)

    def query_tasks(self, ids: Sequence[str], timeout: float = 0.5) -> Iterable[Any]:
        tasks = self.inspect(timeout).query_task(*ids) or {}
        yield from tasks.items()

    def query_task_states(self, ids: Sequence[str], timeout: float = 0.5) -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for _hostname, reply in self.query_tasks(ids, timeout=timeout):
            for task_id, (state, _) in reply.items():
                found[state].add(task_id)
        return found

    def assert_accepted(
        self,
        ids: Sequence[str],
        interval: float = 0.5,
        desc: str = "waiting for tasks to be accepted",
        **policy: Any,
    ) -> Any:
        return self.assert_task_worker_state(
            self.is_accepted, ids, interval=interval, desc=desc, **policy
        )

    def assert_received(
        self,
        ids: Sequence[str],
        interval: float = 0.5,
        desc: str = "waiting for tasks to be received",
        **policy: Any,
    ) -> Any:
        return self.assert_task_worker_state(
            self.is_received, ids, interval=interval, desc=desc, **policy
        )

    def assert_result_tasks_in_progress_or_completed(
        self,
        async_results: Sequence[Any],
        interval: float = 0.5,
        desc: str = "waiting for tasks to be started or completed",
        **policy: Any,
    ) -> Any:
        return self.assert_task_state_from_result(
            self.is_result_task_in_progress, async_results, interval=interval, desc=desc, **policy
        )

    def assert_task_state_from_result(
        self, fun: Callable[..., Any], results: Any, interval: float = 0.5, **policy: Any
    ) -> Any:
        return self.wait_for(
            lambda: self.true_or_raise(fun, results, timeout=interval), (Sentinel,), **policy
        )

    @staticmethod
    def is_result_task_in_progress(results: Iterable[Any], **kwargs: Any) -> bool:
        return all(result.state in (states.STARTED, states.SUCCESS) for result in results)

    def assert_task_worker_state(
        self, fun: Callable[..., Any], ids: Any, interval: float = 0.5, **policy: Any
    ) -> Any:
        return self.wait_for(
            lambda: self.true_or_raise(fun, ids, timeout=interval), (Sentinel,), **policy
        )

    def is_received(self, ids: Sequence[str], **kwargs: Any) -> bool:
        return self._ids_matches_state(["reserved", "active", "ready"], ids, **kwargs)

    def is_accepted(self, ids: Sequence[str], **kwargs: Any) -> bool:
        return self._ids_matches_state(["active", "ready"], ids, **kwargs)

    def _ids_matches_state(
        self, expected_states: Sequence[str], ids: Sequence[str], timeout: float = 0.5
    ) -> bool:
        found = self.query_task_states(ids, timeout=timeout)
        return all(any(t in found[k] for k in expected_states) for t in ids)

    def true_or_raise(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        res = fun(*args, **kwargs)
        if not res:
            raise Sentinel()
        return res

    def wait_until_idle(self) -> None:
        """Purge what waits in the queues, then wait until no task is reserved or running."""
        broker = self.app.broker
        while broker.purge():
            pass
        deadline = time.monotonic() + IDLE_TIMEOUT
        while time.monotonic() < deadline:
            if not any(stats.reserved for stats in broker.stats().values()):
                return
            time.sleep(0.05)


class Manager(ManagerMixin):
    """Test helpers for task integration tests."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        self.app = app
        self._init_manager(**kwargs)
