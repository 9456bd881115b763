"""Results of several tasks read together: ``ResultSet`` and a group's ``GroupResult``.

A ``ResultSet`` reads and waits for its members in batched reads, not one read per
member. ``GroupResult`` is a group's members in the order given; ``save()`` stores the
membership (sending a group or chord does it for you) so ``GroupResult.restore(id)``
works anywhere, and ``result_from_tuple`` rebuilds any result, parents and members
included, from its ``as_tuple()`` data. Kept apart from the single-task handles in
``conveyor.taskresult`` (``conveyor.result`` offers both) because waiting for many at once is
its own concern.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from . import aio_client, states
from .current import current_app
from .eagerresult import EagerResult
from .exceptions import TimeoutError
from .ids import new_id
from .joins import check_get_arguments, check_join
from .keys import GROUP_PREFIX
from .records import TaskRecord
from .taskresult import (
    AnyResult,
    AsyncResult,
    lend_group_rebuilder,
    record_error,
    record_value,
)

if TYPE_CHECKING:
    from .app import Conveyor

__all__ = ["GroupResult", "ResultSet", "bound_group_result", "result_from_tuple"]

JOIN_ORDER = (
    "timeout",
    "propagate",
    "interval",
    "callback",
    "no_ack",
    "on_message",
    "disable_sync_subtasks",
    "on_interval",
)
"""``join()``'s (and a set's ``get()``'s) parameters in Celery's positional order."""


class ResultSet:
    """Several results read and waited for together, in the order given."""

    def _time_left(
        self, deadline: float | None, waiting: list[str], timeout: float | None
    ) -> float | None:
        """Seconds left before ``deadline`` (None: no limit); TimeoutError once it passed."""
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError(
                f"{len(waiting)} of {len(self.results)} results not ready after {timeout}s "
                f"(first: {waiting[0]})"
            )
        return left

    def __init__(self, results: Iterable[AnyResult], app: Conveyor | None = None) -> None:
        self.results: list[AnyResult] = list(results)
        self._app = app

    @property
    def app(self) -> Conveyor:
        if self._app is None:
            for result in self.results:
                if result._app is not None:
                    self._app = result._app
                    return result._app
            self._app = current_app()
        return self._app

    @app.setter
    def app(self, app: Conveyor) -> None:
        self._app = app

    # -- membership

    def add(self, result: AnyResult) -> None:
        if result not in self.results:
            self.results.append(result)

    def update(self, results: Iterable[AnyResult]) -> None:
        for result in results:
            self.add(result)

    def remove(self, result: AnyResult | str) -> None:
        self.results.remove(self._find(result))

    def discard(self, result: AnyResult | str) -> None:
        if result in self:
            self.remove(result)

    def clear(self) -> None:
        self.results.clear()

    def _find(self, result: AnyResult | str) -> AnyResult:
        for member in self.results:
            if member == result:
                return member
        raise ValueError(f"{result} is not in this result set")

    def __iter__(self) -> Iterator[AnyResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> AnyResult:
        return self.results[index]

    def __contains__(self, result: object) -> bool:
        return any(member == result for member in self.results)

    # -- state

    def _states(self) -> list[str]:
        """The state of each member in order; one batched read for the plain members."""
        plain = [r for r in self.results if _stored(r)]
        records = self.app.results.read_many([r.id for r in plain]) if plain else []
        found = {r.id: rec for r, rec in zip(plain, records, strict=True)}
        missing = [task_id for task_id, record in found.items() if record is None]
        queued = self.app.broker.contains(missing) if missing else set()
        gone = [task_id for task_id in missing if task_id not in queued]
        if gone:  # stored before acked: a second read finds what finished in between
            found.update(zip(gone, self.app.results.read_many(gone), strict=True))
        out = []
        for member in self.results:
            if isinstance(member, ResultSet):
                out.append(_set_state(member._states()))
            elif member.id in found:
                record = found[member.id]
                if record is not None:
                    out.append(record.status)
                else:
                    out.append(states.PENDING if member.id in queued else states.UNKNOWN)
            else:
                out.append(member.state)
        return out

    def ready(self) -> bool:
        """Every member has finished (successfully or not)."""
        return all(s in states.READY_STATES for s in self._states())

    def successful(self) -> bool:
        """Every member succeeded."""
        return all(s == states.SUCCESS for s in self._states())

    def failed(self) -> bool:
        """At least one member failed."""
        return any(s == states.FAILURE for s in self._states())

    def waiting(self) -> bool:
        """At least one member has not finished."""
        return not self.ready()

    def completed_count(self) -> int:
        """How many members succeeded."""
        return sum(s == states.SUCCESS for s in self._states())

    # -- values

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], None] | None = None,
        no_ack: bool = True,
        on_message: None = None,
        disable_sync_subtasks: bool = True,
        on_interval: None = None,
    ) -> list[Any]:
        """Wait for every member and return their values in order.

        With ``propagate`` the first failed member (in order) raises its exception; without
        it, a failed member's place holds the exception. ``timeout`` bounds the whole wait.
        ``callback(task_id, value)`` is called for each member instead of collecting values.
        Celery's parameters in Celery's order, each checked (see ``conveyor.joins``).
        """
        check_get_arguments(
            JOIN_ORDER,
            timeout=timeout,
            propagate=propagate,
            interval=interval,
            callback=callback,
            no_ack=no_ack,
            on_message=on_message,
            disable_sync_subtasks=disable_sync_subtasks,
            on_interval=on_interval,
        )
        if any(_stored(r) and not r.ignored for r in _flatten(self.results)):  # eager: known
            aio_client.refuse_blocking("join() (a group's get())", "await group_result.aget()")
        check_join(disable_sync_subtasks, "a chord")
        deadline = None if timeout is None else time.monotonic() + timeout
        records = self._wait_all(deadline, timeout)
        values: list[Any] = []
        for member in self.results:
            if isinstance(member, ResultSet):
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                value: Any = member.join(left, propagate, disable_sync_subtasks=False)
            elif member.id in records:
                record = records[member.id]
                if propagate:
                    error = record_error(record, member.id)
                    if error is not None:
                        raise error
                value = record_value(record, member._typed_by(record), member.id)
            else:
                value = member.get(
                    timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
                    propagate=propagate,
                    disable_sync_subtasks=False,
                )
            if callback is not None:
                callback(member.id, value)
            else:
                values.append(value)
        return values

    get = join  # a set's value is its members' values, in order

    def _wait_all(self, deadline: float | None, timeout: float | None) -> dict[str, TaskRecord]:
        """Read all plain members at once; wait on the last unfinished one; repeat.

        Members mostly finish in order, so once the last is done one more read usually
        finds the rest: a couple of batched reads, not one read per member.
        """
        plain = [r for r in self.results if _stored(r)]
        store = self.app.results
        ids = [r.id for r in plain]
        done: dict[str, TaskRecord] = {}
        while ids:
            ids = _still_waiting(ids, store.read_many(ids), done)
            if not ids:
                break
            left = self._time_left(deadline, ids, timeout)
            record = store.wait(ids[-1], left)
            if record is not None and record.status in states.READY_STATES:
                done[ids[-1]] = record
                ids = ids[:-1]
        return done

    join_native = join

    # -- from a coroutine (conveyor.aio_client): the same answers, never blocking the loop

    async def _astates(self) -> list[str]:
        """``_states()`` for coroutines: one batched read for the plain members."""
        app = self.app
        plain = [r for r in self.results if _stored(r)]
        records = await aio_client.read_many(app, [r.id for r in plain]) if plain else []
        found = {r.id: rec for r, rec in zip(plain, records, strict=True)}
        missing = [task_id for task_id, record in found.items() if record is None]
        queued = await aio_client.contains(app, missing) if missing else set()
        gone = [task_id for task_id in missing if task_id not in queued]
        if gone:  # stored before acked: a second read finds what finished in between
            found.update(zip(gone, await aio_client.read_many(app, gone), strict=True))
        out = []
        for member in self.results:
            if isinstance(member, ResultSet):
                out.append(_set_state(await member._astates()))
            elif member.id in found:
                record = found[member.id]
                if record is not None:
                    out.append(record.status)
                else:
                    out.append(states.PENDING if member.id in queued else states.UNKNOWN)
            else:
                out.append(await member.astate())
        return out

    async def aready(self) -> bool:
        """``ready()`` for coroutines."""
        return all(s in states.READY_STATES for s in await self._astates())

    async def asuccessful(self) -> bool:
        return all(s == states.SUCCESS for s in await self._astates())

    async def afailed(self) -> bool:
        return any(s == states.FAILURE for s in await self._astates())

    async def acompleted_count(self) -> int:
        return sum(s == states.SUCCESS for s in await self._astates())

    async def ajoin(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], None] | None = None,
        no_ack: bool = True,
        on_message: None = None,
        disable_sync_subtasks: bool = True,
        on_interval: None = None,
    ) -> list[Any]:
        """``join()`` for coroutines (also ``await group_result`` and ``aget()``): the
        members' values in order, waited for without blocking the event loop."""
        check_get_arguments(
            JOIN_ORDER,
            timeout=timeout,
            propagate=propagate,
            interval=interval,
            callback=callback,
            no_ack=no_ack,
            on_message=on_message,
            disable_sync_subtasks=disable_sync_subtasks,
            on_interval=on_interval,
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        records = await self._await_all(deadline, timeout)
        values: list[Any] = []
        for member in self.results:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if isinstance(member, ResultSet):
                value: Any = await member.ajoin(left, propagate)
            elif member.id in records:
                record = records[member.id]
                if propagate:
                    error = record_error(record, member.id)
                    if error is not None:
                        raise error
                value = record_value(record, member._typed_by(record), member.id)
            else:
                value = await member.aget(timeout=left, propagate=propagate)
            if callback is not None:
                callback(member.id, value)
            else:
                values.append(value)
        return values

    aget = ajoin

    def __await__(self) -> Generator[Any, None, list[Any]]:
        """``await group_result`` is ``await group_result.aget()``."""
        return self.ajoin().__await__()

    async def _await_all(
        self, deadline: float | None, timeout: float | None
    ) -> dict[str, TaskRecord]:
        """``_wait_all()`` for coroutines: batched reads, a wait on the last unfinished."""
        app = self.app
        ids = [r.id for r in self.results if _stored(r)]
        done: dict[str, TaskRecord] = {}
        while ids:
            ids = _still_waiting(ids, await aio_client.read_many(app, ids), done)
            if not ids:
                break
            left = self._time_left(deadline, ids, timeout)
            record = await aio_client.wait(app, ids[-1], left)
            if record is not None and record.status in states.READY_STATES:
                done[ids[-1]] = record
                ids = ids[:-1]
        return done

    def maybe_throw(self, propagate: bool = True) -> None:
        """Raise the exception of the first failed member, if any has failed."""
        plain = [r for r in self.results if _stored(r)]
        records = self.app.results.read_many([r.id for r in plain])
        for member, record in zip(plain, records, strict=True):
            if record is not None and propagate:
                error = record_error(record, member.id)
                if error is not None:
                    raise error

    def forget(self) -> None:
        ids = [r.id for r in _flatten(self.results)]
        self.app.results.forget(ids)

    def revoke(self, terminate: bool = False, signal: str | int = "SIGTERM") -> None:
        """Revoke every member at once (``app.control.revoke`` with all their ids)."""
        self.app.control.revoke([r.id for r in _flatten(self.results)], terminate, signal)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return other.results == self.results
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(r.id for r in self.results))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(r.id for r in self.results)}]>"


class GroupResult(ResultSet, AsyncResult[list[Any]]):
    """The results of a group, in the order its members were given."""

    prefix = GROUP_PREFIX
    reads_parent = False  # a group keeps no record of its own
    bound_app: Conveyor | None = None
    """The app of ``app.GroupResult`` (see ``bound_group_result``); None: the current one."""

    def __init__(
        self,
        id: str | None = None,
        results: Iterable[AnyResult] | None = None,
        parent: AnyResult | None = None,
        app: Conveyor | None = None,
    ) -> None:

        ResultSet.__init__(self, results or [], app or self.bound_app)
        self.id = id or new_id()
        self._task = None
        self.parent = parent

    @property
    def children(self) -> list[AnyResult]:
        return self.results

    @property
    def state(self) -> str:
        """SUCCESS when every member succeeded, FAILURE once one failed, else PENDING."""
        found = self._states()
        if any(s in states.PROPAGATE_STATES for s in found):
            return states.FAILURE
        if all(s in states.READY_STATES for s in found):
            return states.SUCCESS
        return states.PENDING

    status = state

    @property
    def result(self) -> Any:
        return [r.result for r in self.results]

    # Not AsyncResult's: a group's value is its members' values, and Celery's set takes
    # its parameters in another order (callback 4th) than a single result's get().
    get = ResultSet.get  # type: ignore[assignment]
    wait = ResultSet.get  # type: ignore[assignment]
    aget = ResultSet.ajoin  # type: ignore[assignment]
    __await__ = ResultSet.__await__

    async def astate(self) -> str:
        """``state`` for coroutines."""
        found = await self._astates()
        if any(s in states.PROPAGATE_STATES for s in found):
            return states.FAILURE
        if all(s in states.READY_STATES for s in found):
            return states.SUCCESS
        return states.PENDING

    async def aresult(self) -> Any:
        return [await r.aresult() for r in self.results]

    ainfo = aresult

    def as_tuple(self) -> tuple[Any, ...]:
        """``((id, parent), [member tuples])``, Celery's shape: plain data that
        ``result_from_tuple`` rebuilds."""
        parent = self.parent.as_tuple() if self.parent is not None else None
        return ((self.id, parent), [r.as_tuple() for r in self.results])

    def encode(self) -> tuple[str, bytes]:
        return self.prefix + self.id, msgspec.json.encode(self.as_tuple())

    def save(self, backend: Any = None) -> GroupResult:
        """Store the membership so ``GroupResult.restore(id)`` works in any process."""
        key, value = self.encode()
        (backend or self.app.backend).set(key, value, self.app.conf.result_expires)
        return self

    def delete(self, backend: Any = None) -> None:
        (backend or self.app.backend).delete([self.prefix + self.id])

    @classmethod
    def restore(
        cls, id: str, backend: Any = None, app: Conveyor | None = None
    ) -> GroupResult | None:
        """The saved group of that id, or None when it was never saved (or expired)."""
        app = app or cls.bound_app
        if app is None:
            app = current_app()
        raw = (backend or app.backend).get(cls.prefix + id)
        if raw is None:
            return None
        restored = result_from_tuple(msgspec.json.decode(raw), app)
        return restored if isinstance(restored, GroupResult) else None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:  # defining __eq__ would otherwise drop the inherited one
        return hash(self.id)

    def __bool__(self) -> bool:
        """True for any group that has an id, an empty one too (``if result:`` after
        sending ``group([])``), as in Celery; ``len()`` counts the members."""
        return bool(self.id or self.results)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"


def bound_group_result(app: Conveyor) -> type[GroupResult]:
    """``app.GroupResult``: a GroupResult class on ``app``, so ``app.GroupResult(id, results)``
    and ``app.GroupResult.restore(id)`` use that app's store, as Celery's do."""
    bound: type[GroupResult] = type("GroupResult", (GroupResult,), {"bound_app": app})
    return bound


def result_from_tuple(data: Sequence[Any] | AnyResult, app: Conveyor | None = None) -> AnyResult:
    """Rebuild a result (with its parents and members) from ``as_tuple()`` data (or
    Celery's older ``(id, members)``); a result given is returned as it is."""
    if isinstance(data, AsyncResult):
        return data
    head, members = data
    task_id, parent = head if isinstance(head, list | tuple) else (head, None)
    parent_result = result_from_tuple(parent, app) if parent is not None else None
    if members is not None:
        return GroupResult(
            task_id, [result_from_tuple(m, app) for m in members], parent=parent_result, app=app
        )
    return AsyncResult(task_id, app=app, parent=parent_result)


lend_group_rebuilder(result_from_tuple)


def _set_state(member_states: list[str]) -> str:
    """The state a nested set counts as within its parent set."""
    if all(s == states.SUCCESS for s in member_states):
        return states.SUCCESS
    if any(s in states.PROPAGATE_STATES for s in member_states):
        return states.FAILURE
    if all(s in states.READY_STATES for s in member_states):
        return states.SUCCESS
    return states.PENDING


def _stored(result: AnyResult) -> bool:
    return not isinstance(result, ResultSet | EagerResult)


def _flatten(results: Iterable[AnyResult]) -> Iterator[AnyResult]:
    for result in results:
        if isinstance(result, ResultSet):
            yield from _flatten(result.results)
        else:
            yield result


def _still_waiting(
    ids: list[str], records: Sequence[TaskRecord | None], done: dict[str, TaskRecord]
) -> list[str]:
    """Move the ready records into ``done``; the ids still waiting, in order."""
    waiting = []
    for task_id, record in zip(ids, records, strict=True):
        if record is not None and record.status in states.READY_STATES:
            done[task_id] = record
        else:
            waiting.append(task_id)
    return waiting
