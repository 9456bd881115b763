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
from typing import TYPE_CHECKING, Any, ClassVar, cast

from . import states
from .ids import new_id
from .signatures import KINDS, Signature, as_list, as_operand, as_signature, copy_tree
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
        tasks = self.kwargs.get("tasks")
        if not isinstance(tasks, list):
            tasks = self.kwargs["tasks"] = list(tasks or ())
        for i, task in enumerate(tasks):  # in place: the same list each time, as Celery's
            tasks[i] = as_signature(task, self._app)
        return tasks

    @tasks.setter
    def tasks(self, value: Iterable[Any]) -> None:
        self.kwargs["tasks"] = [as_signature(t, self._app) for t in value]


class chain(_Composite):
    """``chain(a.s(), b.s(), c.si())`` or ``a.s() | b.s()``: each result feeds the next.

    Built from several steps and nothing else (no ``app=`` or options), a chain is joined
    with ``|`` step by step, so Celery's upgrades apply: a group followed by a task becomes
    a chord, consecutive chords become one, and ``chain(group, task)`` *is* that chord.
    """

    name_, kind_ = CHAIN, "chain"

    def __new__(cls, *tasks: Any, **options: Any) -> Any:
        several = len(tasks) > 1 or (len(tasks) == 1 and _is_steps(tasks[0]))
        if cls is chain and not options and several:
            joined = _joined(tasks[0] if len(tasks) == 1 else tasks)
            joined.__dict__["_joined"] = True  # __init__ must not build it again
            return joined
        return super().__new__(cls)

    def __init__(self, *tasks: Any, app: Conveyor | None = None, **options: Any) -> None:
        if self.__dict__.pop("_joined", False):
            return
        super().__init__(*tasks, app=app, **options)

    def unchain_tasks(self) -> list[Signature]:
        """Copies of the steps, this chain's callbacks on the last and its errbacks on each,
        as when the chain is taken into another (Celery's)."""
        tasks = [copy_tree(t) for t in self.tasks]
        for callback in as_list(self.options.get("link")):
            if tasks:
                tasks[-1].link(callback)
        for errback in as_list(self.options.get("link_error")):
            for task in tasks:
                task.link_error(errback)
        return tasks

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        """Celery's rules: a group after a chord goes into the chord's callback; a task
        after a group makes the two a chord, joined into a chord before them."""
        other = as_operand(other, self._app)
        if isinstance(other, group):
            if len(other.tasks) == 1:
                return self | other.tasks[0]
            tasks = self.unchain_tasks()
            if not tasks:
                return other
            if isinstance(tasks[-1], chord):
                tasks[-1].body = tasks[-1].body | other
                return self._with(tasks)
            return self._with([*tasks, other])
        if isinstance(other, chain):
            joined: Signature = self
            for task in other.unchain_tasks():
                joined = joined | task
            return joined
        last = self.kwargs["tasks"][-1] if self.kwargs.get("tasks") else None
        if isinstance(last, group) and last.kwargs.get("tasks"):  # an empty one is skipped
            sig = cast(chain, self.clone())
            steps = sig.tasks
            steps[-1] = chord(steps[-1], other, app=self._app)
            before = steps[-2] if len(steps) > 1 else None
            if isinstance(before, chord):  # two chords in a row become one
                before.body = before.body | steps.pop()
            sig.tasks = steps
            return sig
        if isinstance(last, chord):
            sig = cast(chain, self.clone())
            end = cast(chord, sig.tasks[-1])
            end.body = end.body | other
            return sig
        return self._with([*self.unchain_tasks(), other])

    def _with(self, tasks: list[Signature]) -> chain:
        """A chain of the same class over ``tasks``, with this one's options but for the
        callbacks ``unchain_tasks`` handed to the steps."""
        new = type(self)(*tasks, app=self._app)
        options = {k: v for k, v in self.options.items() if k not in ("link", "link_error")}
        new.options.update(copy.deepcopy(options))
        return new

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
                previous = result
                result = task.apply((_eager_value(previous),), **options)
                if getattr(result, "parent", previous) is None:
                    result.parent = previous  # walks back through the chain, as sent ones do
            if getattr(result, "state", None) in (states.IGNORED, states.REJECTED):
                break
        return result

    def freeze(self, _id: str | None = None, *args: Any, **kwargs: Any) -> Any:
        """Give every step its id; the chain's id becomes its last task's (``_id`` if given)."""
        result = super().freeze(_id, *args, **kwargs)
        if result is not None:
            self.options["task_id"] = result.id
        return result

    def __repr__(self) -> str:
        tasks = self.tasks
        if not tasks:
            return f"<{type(self).__name__}@{id(self):#x}: empty>"
        return _short_names(tasks[0].task, " | ".join(repr(t) for t in tasks))


class group(_Composite):
    """``group(process.s(i) for i in ids)``: run in parallel; a GroupResult in that order."""

    name_, kind_ = GROUP, "group"

    def __init__(self, *tasks: Any, app: Conveyor | None = None, **options: Any) -> None:
        if len(tasks) == 1 and isinstance(tasks[0], group):
            # Celery's: a group of one group is that group's members (the same list), so
            # ``group(g)`` gives g's results, flat.
            inner = tasks[0]
            super().__init__((), app=app or inner._app, **options)
            self.kwargs["tasks"] = inner.tasks
            return
        super().__init__(*tasks, app=app, **options)

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

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        """``group | x`` is a chord with ``x`` as its callback, even for a group of one."""
        return chord(self, as_operand(other, self._app), app=self._app)

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Spread the members' start over time (Celery's): member i gets the countdown
        ``start + i * step``, never past ``stop``. Returns the group."""
        for i, task in enumerate(self.tasks):
            countdown = start + i * step
            task.set(countdown=countdown if stop is None else min(countdown, stop))
        return self

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        results = [task.apply(args, kwargs, **options) for task in self.tasks]
        return self.app.GroupResult(self.id or new_id(), results)  # the app knows result classes

    def __repr__(self) -> str:
        tasks = self.tasks
        if not tasks:
            return "group(<empty>)"
        return _short_names(tasks[0].task, f"group([{', '.join(repr(t) for t in tasks)}])")


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
        elif isinstance(header, list | tuple):
            # Copies, as in Celery: an errback linked to a member leaves the caller's alone.
            head = group([copy_tree(as_signature(t, app)) for t in header], app=app)
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

    def header_stream(self) -> Iterator[Signature] | None:
        """For a header given as a generator not read yet: copies of its signatures, read
        one at a time as sending goes on (as Celery sends it), and the header becomes an
        empty group for the sender to fill. None for any other header."""
        head = self.kwargs["header"]
        if not isinstance(head, _Unread) or head.exhausted:
            return None
        self.kwargs["header"] = group([], app=self._app)
        return (copy_tree(as_signature(s, self._app)) for s in head.stream())

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

    @body.setter
    def body(self, value: Any) -> None:
        self.kwargs["body"] = None if value is None else as_signature(value, self._app)

    @property
    def tasks(self) -> list[Signature]:
        return self.header.tasks

    @tasks.setter
    def tasks(self, value: Iterable[Any]) -> None:
        self.header.tasks = value

    def link_error(self, errback: Mapping[str, Any]) -> Signature:
        """Run ``errback`` once when the chord fails. With Celery's setting
        ``task_allow_error_cb_on_chord_header``, a copy also goes to each header task, so
        it runs for every member that fails as well (with that member's id), as in
        Celery."""
        sig = as_signature(errback, self._app)
        if self.app.conf.task_allow_error_cb_on_chord_header:
            # A copy each, called with the failed member's id: Celery's own copy here,
            # clone(immutable=True), only adds an option that changes no call.
            for task in self.tasks:
                task.link_error(sig.clone())
        if self.kwargs.get("body") is None:  # given later: freezing hands it on
            return super().link_error(sig)
        return self.body.link_error(sig)

    def link(self, callback: Mapping[str, Any]) -> Signature:
        """Apply ``callback`` to the callback's result, as Celery does: it is linked to the
        chord's callback."""
        if self.kwargs.get("body") is None:
            return super().link(callback)
        return self.body.link(callback)

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        """``chord | task`` (or a group of one) goes on the callback, as in Celery; a chord
        followed by a bigger group or a chain is a chain."""
        other = as_operand(other, self._app)
        if isinstance(other, group) and len(other.tasks) == 1:
            other = other.tasks[0]
        if isinstance(other, group | chain):
            return super().__or__(other)
        sig = cast(chord, self.clone())
        sig.body = other if sig.kwargs.get("body") is None else sig.body | other
        return sig

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
        """Celery's: ``%tsum([add(1, 1), add(2, 2)])``, the callback called on the header."""
        if self.kwargs.get("body") is None:
            return f"<chord without body: {self.tasks!r}>"
        body, rest = self.body, ""
        steps = body.tasks if isinstance(body, chain) else []
        if steps:
            body, rest = steps[0], " | ".join(repr(t) for t in steps[1:])
        parts = [repr(self.tasks)] + [repr(a) for a in body.args]
        parts += [f"{k}={v!r}" for k, v in body.kwargs.items()]
        call = f"{body.task}({', '.join(parts)})"
        return _short_names(body.task, f"%({call} | {rest})" if rest else f"%{call}")


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
            {"task": as_signature(task, app), "it": [_items(item) for item in it], "n": int(n)},
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
        STARMAP, (), {"task": as_signature(task, app), "it": [_items(i) for i in it]}, app=app
    )


# -- conversion ---------------------------------------------------------------------------

# So that signature_from_dict (conveyor.signatures) rebuilds each kind from its dict form;
# by task name too, for a subclass's kind that the receiving process did not register.
KINDS.update(chain=chain, group=group, chord=chord, chunks=chunks)
KINDS.update({CHAIN: chain, GROUP: group, CHORD: chord, CHUNKS: chunks})


class _Unread:
    """A chord header given as a generator, read once when first needed (Celery's
    ``regen``): copies of the chord share it, so each sees every signature."""

    def __init__(self, items: Iterator[Any]) -> None:
        self._items: Iterator[Any] | None = items
        self._read: list[Any] = []

    def read(self) -> list[Any]:
        if self._items is not None:
            self._read.extend(self._items)
            self._items = None
        return self._read

    def stream(self) -> Iterator[Any]:
        """Each item, those read already first, reading the rest one at a time (kept, so
        copies of the chord still see every item)."""
        yield from list(self._read)
        while self._items is not None:
            try:
                item = next(self._items)
            except StopIteration:
                self._items = None
                return
            self._read.append(item)
            yield item

    @property
    def exhausted(self) -> bool:
        return self._items is None

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unread:
        return self


def _items(item: Any) -> Any:
    """One chunk item: its arguments as a list (their JSON shape), or a single argument."""
    return list(item) if isinstance(item, list | tuple) else item


def _is_steps(value: Any) -> bool:
    """A list, tuple or generator of steps (not one signature, which is a dict)."""
    return isinstance(value, Iterable) and not isinstance(value, Mapping | str)


def _joined(items: Iterable[Any]) -> Signature:
    """``chain() | a | b | ...``: the steps joined by Celery's rules. Plain tasks after a
    plain task are appended in place (the chain is new), which keeps a long chain linear."""
    joined: Signature = chain(app=None)
    for item in items:
        sig = as_operand(item, None)
        steps = joined.kwargs.get("tasks") if type(joined) is chain else None
        plain = not sig.subtask_type and not joined.options
        if steps and plain and not isinstance(steps[-1], group | chord):
            steps.append(sig)
        else:
            joined = joined | sig
    return joined


def _short_names(first: str, text: str) -> str:
    """``text`` with the module of task name ``first`` written out once, as Celery's reprs
    do: ``proj.tasks.add(2, 2) | mul(4)``."""
    module = first.rpartition(".")[0] + "."
    start = text.find(module)
    if module == "." or start < 0:
        return text
    end = start + len(module)
    return text[:end] + text[end:].replace(module, "")


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
        if isinstance(sig, chain):  # Celery's _maybe_group: a chain's steps run in parallel
            return group([copy_tree(t) for t in sig.tasks], app=app)
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
