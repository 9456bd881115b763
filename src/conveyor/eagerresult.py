"""``EagerResult``: the outcome of ``Task.apply()`` (and of eager mode), known at once and
stored nowhere, with ``AsyncResult``'s reading methods."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .joins import check_get_arguments
from .taskresult import GET_ORDER, AsyncResult

if TYPE_CHECKING:
    from .task import AnyTask

__all__ = ["EagerResult"]

R = TypeVar("R", covariant=True)


class EagerResult(AsyncResult[R]):
    """The outcome of ``Task.apply()``: known at once, stored nowhere."""

    reads_parent = False

    def __init__(
        self,
        id: str,
        retval: Any,
        state: str,
        traceback: str | None = None,
        task: AnyTask | str | None = None,
        retries: int = 0,
        name: str | None = None,
    ):
        """``task`` may be given as its name, as Celery's ``EagerResult(id, value, state,
        traceback, name)`` is built."""
        if isinstance(task, str):
            task, name = None, name or task
        super().__init__(id, task=task)
        self._name = name
        self._retval = retval
        self._state = state
        self._traceback = traceback
        self._retries = retries

    @property
    def state(self) -> str:
        return self._state

    status = state

    @property
    def result(self) -> Any:
        return self._retval

    info = result

    @property
    def traceback(self) -> str | None:
        return self._traceback

    @property
    def retries(self) -> int:
        return self._retries

    @property
    def name(self) -> str | None:
        return self._task.name if self._task else self._name

    @property
    def date_done(self) -> datetime | None:
        return None

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[[str, Any], None] | None = None,
        on_message: None = None,
        on_interval: None = None,
        disable_sync_subtasks: bool = True,
    ) -> R:
        check_get_arguments(
            GET_ORDER,
            timeout=timeout,
            propagate=propagate,
            interval=interval,
            no_ack=no_ack,
            follow_parents=follow_parents,
            callback=callback,
            on_message=on_message,
            on_interval=on_interval,
            disable_sync_subtasks=disable_sync_subtasks,
        )
        if propagate and isinstance(self._retval, BaseException):
            raise self._retval
        value: R = self._retval
        if callback is not None:
            callback(self.id, value)
        return value

    wait = get

    async def aget(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[[str, Any], None] | None = None,
        on_message: None = None,
        on_interval: None = None,
        disable_sync_subtasks: bool = True,
    ) -> R:
        """Known already: ``get()``'s answer."""
        return self.get(
            timeout,
            propagate,
            interval,
            no_ack,
            follow_parents,
            callback,
            on_message,
            on_interval,
            disable_sync_subtasks,
        )

    async def astate(self) -> str:
        return self._state

    async def aresult(self) -> Any:
        return self._retval

    ainfo = aresult

    async def amaybe_throw(self, propagate: bool = True) -> None:
        if propagate and isinstance(self._retval, BaseException):
            raise self._retval

    def forget(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id} {self._state}>"
