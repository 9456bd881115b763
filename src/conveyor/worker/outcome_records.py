"""A task's success as the record stored for it, and what every outcome record keeps of
its message: pure functions, so the consumer's thread and the loop thread (which stores a
quick coroutine's success itself while the consumer waits for it: aio_executor.py) build
the same record."""

from __future__ import annotations

from typing import Any

from .. import states
from ..message import Message
from ..records import TaskRecord
from ..serialization import check_return, tag_result
from ..task import AnyTask
from ..taskresult import AsyncResult

__all__ = ["keep_lineage", "success_record"]


def success_record(task: AnyTask, message: Message, retval: Any, hostname: str) -> TaskRecord:
    """The SUCCESS record of ``retval``; raises EncodeError when a typed task's result does
    not fit its annotation."""
    spec = task.spec if task.typing else None
    value = _storable(retval)
    if spec is not None:
        check_return(message.task, value, spec.returns)
    return TaskRecord(
        status=states.SUCCESS,
        result=tag_result(value, spec),
        argsrepr=message.argsrepr,
        kwargsrepr=message.kwargsrepr,
        task=message.task,
        retries=message.retries,
        worker=hostname,
    )


def keep_lineage(
    record: TaskRecord, message: Message, sent: list[Any] | None, runtime: float | None
) -> None:
    """What an outcome record keeps of its message (queue, parent, root), the seconds the
    task ran, and the results of what it sent as it ran (``AsyncResult.children``)."""
    record.queue = message.queue
    record.parent_id = message.parent_id
    record.runtime = runtime
    if message.root_id != message.id:
        record.root_id = message.root_id
    if sent:
        record.children = [child.as_tuple() for child in sent]


def _storable(value: Any) -> Any:
    """A returned result handle is stored as its ids (``as_tuple``), as Celery's backends
    store one: the caller rebuilds it with ``result_from_tuple``."""
    if isinstance(value, AsyncResult):  # a GroupResult is one too
        return value.as_tuple()
    return value
