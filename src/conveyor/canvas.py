"""The canvas: chain, group, chord, chunks, map and starmap, the workflow primitives.

Each is a ``Signature`` (``conveyor.signatures``) whose kwargs hold the signatures it is
made of, so a whole workflow is plain data. This module also turns data back into
signatures (``signature()``, ``maybe_signature()``). How a workflow is frozen
(``conveyor.freeze``) and sent (``conveyor.plan``), and how a container's options reach its
tasks: docs/internals.md, "Sending a canvas".
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from . import states
from .ids import new_id
from .signatures import KINDS, Signature, as_signature, copy_tree
from .signatures import signature_from_dict as signature_from_dict

if TYPE_CHECKING:
    from .app import Conveyor

__all__ = [
    "Signature",
    "chain",
    "chord",
    "chunks",
    "group",
    "maybe_signature",
    "signature",
    "xmap",
    "xstarmap",
]

CHAIN = "conveyor.chain"
GROUP = "conveyor.group"
CHORD = "conveyor.chord"
CHUNKS = "conveyor.chunks"
MAP = "conveyor.map"
STARMAP = "conveyor.starmap"
ACCUMULATE = "conveyor.accumulate"
FORWARD = "conveyor.forward"
"""Not a task: a link (and link_error) marker meaning "store this outcome under another id
too". ``Task.replace`` puts it on the replacement so the replaced id gets the result."""


class _Composite(Signature):
    """A signature over a list of signatures (a chain's steps, a group's members)."""

    name_: ClassVar[str]
    kind_: ClassVar[str]

    def __init__(self, *tasks: Any, app: Conveyor | None = None, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
            tasks = tuple(tasks[0])
        sigs = [as_signature(t, app) for t in tasks]
        super().__init__(self.name_, (), {"tasks": sigs}, options, app=app, subtask_type=self.kind_)

    @property
    def tasks(self) -> list[Signature]:
        tasks = [as_signature(t, self._app) for t in self.kwargs.get("tasks", [])]
        self.kwargs["tasks"] = tasks
        return tasks


class chain(_Composite):
    """``chain(a.s(), b.s(), c.si())`` or ``a.s() | b.s()``: each result feeds the next."""

    name_, kind_ = CHAIN, "chain"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Send it (Celery's ``chain(...)()``); an empty chain sends nothing: None."""
        return self.apply_async(args, kwargs) if self.tasks else None

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run each step here; stop after a step that ended IGNORED or REJECTED."""
        steps = [t for t in self.tasks if not _empty_group(t)] or self.tasks[:1]
        result: Any = None
        for i, task in enumerate(steps):
            if i == 0:
                result = task.apply(args, kwargs, **options)
            else:
                result = task.apply((_eager_value(result),), **options)
            if getattr(result, "state", None) in (states.IGNORED, states.REJECTED):
                break
        return result

    def freeze(self, _id: str | None = None) -> Any:
        """Give every step its id; the chain's id becomes its last task's (``_id`` if given)."""
        result = super().freeze(_id)
        if result is not None:
            self.options["task_id"] = result.id
        return result

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks) if self.tasks else "chain()"


class group(_Composite):
    """``group(process.s(i) for i in ids)``: run in parallel; a GroupResult in that order."""

    name_, kind_ = GROUP, "group"

    def __call__(self, *args: Any, **options: Any) -> Any:
        """Send it (Celery's ``group(...)()``): the arguments complete every member's."""
        return self.apply_async(args, **options)

    def link(self, callback: Mapping[str, Any]) -> Signature:
        """Run ``callback`` once, as Celery 5 does: an immutable copy goes to the first
        member (to get the members' results, make it a chord's callback)."""
        tasks = self.tasks
        if not tasks:
            raise ValueError("an empty group has no member to link to; use a chord")
        sig = as_signature(callback, self._app).clone()
        sig.immutable = True
        return tasks[0].link(sig)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        results = [task.apply(args, kwargs, **options) for task in self.tasks]
        return self.app.GroupResult(self.id or new_id(), results)  # the app knows result classes

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"


class chord(Signature):
    """``chord(header, callback)``: the callback gets the header's results, in header order,
    once every member has finished. ``chord(header)(callback)`` sends it at once."""

    def __init__(
        self,
        header: Any,
        body: Any = None,
        app: Conveyor | None = None,
        **options: Any,
    ) -> None:
        head: Any = header
        if isinstance(header, Iterator):
            head = _Unread(header)  # a generator is read when the chord is sent, as in Celery
        elif not isinstance(header, group):
            head = _as_group(header, app)
        super().__init__(
            CHORD,
            (),
            {"header": head, "body": None if body is None else as_signature(body, app)},
            options,
            app=app,
            subtask_type="chord",
        )

    @property
    def header(self) -> group:
        head = self.kwargs["header"]
        if isinstance(head, _Unread):  # copies: each send of this chord freezes its own
            head = group(
                [copy_tree(as_signature(s, self._app)) for s in head.read()], app=self._app
            )
            self.kwargs["header"] = head
        elif not isinstance(head, group):
            head = _as_group(head, self._app)
            self.kwargs["header"] = head
        return head

    def to_dict(self) -> dict[str, Any]:
        self.header  # noqa: B018 - read a generator header first
        return super().to_dict()

    @property
    def body(self) -> Signature:
        body = self.kwargs.get("body")
        if body is None:
            raise ValueError("this chord has no callback: chord(header, callback)")
        sig = as_signature(body, self._app)
        self.kwargs["body"] = sig
        return sig

    @property
    def tasks(self) -> list[Signature]:
        return self.header.tasks

    def __call__(self, body: Any = None, **options: Any) -> Any:
        if body is not None:
            self.kwargs["body"] = as_signature(body, self._app)
        return self.apply_async((), {}, **options)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        header = self.header.apply(args, kwargs, **options)
        values = header.get()
        return self.body.apply((values,), **options)

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.kwargs.get('body')!r})"


class chunks(Signature):
    """``chunks(add.s(), pairs, 10)``: the items in parts of ``n``, each part one task that
    runs them in turn (a list of lists as the result)."""

    def __init__(
        self, task: Any, it: Iterable[Any], n: int, app: Conveyor | None = None, **options: Any
    ) -> None:
        if n < 1:
            raise ValueError(f"chunks: n must be at least 1, not {n!r}")
        super().__init__(
            CHUNKS,
            (),
            {"task": as_signature(task, app), "it": [list(item) for item in it], "n": int(n)},
            options,
            app=app,
            subtask_type="chunks",
        )

    def group(self) -> group:
        task = as_signature(self.kwargs["task"], self._app)
        items = list(self.kwargs["it"])
        size = int(self.kwargs["n"])
        parts = [items[i : i + size] for i in range(0, len(items), size)]
        return group(
            (xstarmap(task, part, app=self._app) for part in parts),
            app=self._app,
            **copy.deepcopy(self.options),
        )

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        return self.group().apply_async(args, kwargs, **options)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        return self.group().apply(args, kwargs, **options)

    def __call__(self, *args: Any, **options: Any) -> Any:
        return self.apply_async(args, {}, **options)


def xmap(task: Any, it: Iterable[Any], app: Conveyor | None = None) -> Signature:
    """One task that calls ``task`` with each item in turn: ``add.map(items)``."""
    return Signature(MAP, (), {"task": as_signature(task, app), "it": list(it)}, app=app)


def xstarmap(task: Any, it: Iterable[Any], app: Conveyor | None = None) -> Signature:
    """One task that calls ``task(*item)`` for each item: ``add.starmap(pairs)``."""
    return Signature(
        STARMAP, (), {"task": as_signature(task, app), "it": [list(i) for i in it]}, app=app
    )


# -- conversion ---------------------------------------------------------------------------

# So that signature_from_dict (conveyor.signatures) rebuilds each kind from its dict form.
KINDS.update(chain=chain, group=group, chord=chord, chunks=chunks)


class _Unread:
    """A chord header given as a generator, read once when first needed (Celery's
    ``regen``): copies of the chord share it, so each sees every signature."""

    def __init__(self, items: Iterator[Any]) -> None:
        self._items: Iterator[Any] | None = items
        self._read: list[Any] = []

    def read(self) -> list[Any]:
        if self._items is not None:
            self._read, self._items = list(self._items), None
        return self._read

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unread:
        return self


def _empty_group(sig: Any) -> bool:
    return isinstance(sig, group) and not sig.tasks


def _as_group(value: Any, app: Conveyor | None) -> group:
    if isinstance(value, group):
        return value
    if isinstance(value, chunks):
        return value.group()
    if isinstance(value, Mapping):
        sig = as_signature(value, app)
        if isinstance(sig, group):
            return sig
        return group([sig], app=app)
    return group(list(value), app=app)


def maybe_signature(value: Any, app: Conveyor | None = None) -> Signature | None:
    """None stays None; a dict becomes a signature; a signature is returned as it is."""
    if value is None:
        return None
    return as_signature(value, app)


def signature(
    task: Any,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    app: Conveyor | None = None,
    **options: Any,
) -> Signature:
    """``signature("tasks.add", args=(2, 2), countdown=10)``, or a copy of a signature or of
    its dict form (as received in a task argument)."""
    if isinstance(task, Signature):
        sig = task.clone()
        if app is not None:
            sig._app = app
        return sig
    if isinstance(task, Mapping):
        return signature_from_dict(copy.deepcopy(dict(task)), app)
    immutable = bool(options.pop("immutable", False))
    return Signature(task, args, kwargs, options, immutable, app)


def _eager_value(result: Any) -> Any:
    return result.get() if hasattr(result, "get") else result
