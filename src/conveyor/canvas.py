"""Signatures and the canvas: chain, group, chord, chunks, map and starmap.

A signature is a task call as plain data. It *is* a dict (``task``, ``args``, ``kwargs``,
``options``, ``subtask_type``, ``immutable``), so it encodes to JSON as it is, can be
passed as a task argument or stored, and comes back with ``signature(data)``.

Sending a workflow takes two steps:

* **freeze** gives every node its id up front (a task id for each task, a group id for
  each group), flattens nested chains and groups, turns a group followed by more work in
  a chain into a chord, and hands a container's options down to the tasks in it. The
  result handles (``AsyncResult`` with ``.parent``, ``GroupResult``) therefore exist
  before anything runs, and any process can read them by id.
* **apply** turns the nodes that can run now into messages. What runs later travels in
  those messages, never in a coordinator: the rest of a chain in ``Message.chain`` (last
  step first), link callbacks in ``callbacks`` / ``errbacks``, and for a chord, each
  header member carries ``chord`` = {id, size, index, callback, callback_id}.
  ``conveyor.workflow`` picks the work up from there when a task ends.

Options given to a chain, group or chord apply to every task in it (a task's own options
win); ``countdown`` and ``eta`` only delay the tasks that are sent first. ``link`` on a
chain goes to its last task, ``link_error`` to every task; on a chord both go to the
callback; on a group to each member.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from .message import Message
from .request import current_request

if TYPE_CHECKING:
    from .app import Conveyor
    from .result import AsyncResult, GroupResult
    from .task import Task

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

_WORKFLOW_OPTIONS = frozenset(
    {"task_id", "link", "link_error", "chain", "chord", "group_id", "group_index"}
)
_CONTEXT_OPTIONS = frozenset({"root_id", "parent_id"})
_NOT_INHERITED = _WORKFLOW_OPTIONS | _CONTEXT_OPTIONS
_ENTRY_ONLY = frozenset({"countdown", "eta"})


def _new_id() -> str:
    return str(uuid.uuid4())


def _plain(value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    return list(value)


class Signature(dict[str, Any]):
    """``add.s(2, 2)``: a task name with arguments and send options; a dict underneath."""

    def __init__(
        self,
        task: Any = None,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        immutable: bool = False,
        app: Conveyor | None = None,
        subtask_type: str | None = None,
        **extra_options: Any,
    ) -> None:
        if isinstance(task, Mapping):
            data = task
            task = data.get("task")
            args = data.get("args") if args is None else args
            kwargs = data.get("kwargs") if kwargs is None else kwargs
            options = data.get("options") if options is None else options
            immutable = bool(data.get("immutable", immutable))
            subtask_type = data.get("subtask_type", subtask_type)
        elif task is not None and not isinstance(task, str):
            app = app or getattr(task, "_app", None)
            task = task.name
        opts = {**dict(options or {}), **extra_options}
        immutable = bool(opts.pop("immutable", immutable))
        super().__init__(
            task=task or "",
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            options=opts,
            subtask_type=subtask_type,
            immutable=immutable,
        )
        self._app = app

    # -- fields -------------------------------------------------------------------------

    @property
    def task(self) -> str:
        return str(self["task"])

    @task.setter
    def task(self, value: str) -> None:
        self["task"] = value

    @property
    def name(self) -> str:
        return self.task

    @property
    def args(self) -> tuple[Any, ...]:
        return tuple(self["args"])

    @args.setter
    def args(self, value: Sequence[Any]) -> None:
        self["args"] = tuple(value)

    @property
    def kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = self["kwargs"]
        return kwargs

    @kwargs.setter
    def kwargs(self, value: Mapping[str, Any]) -> None:
        self["kwargs"] = dict(value)

    @property
    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = self["options"]
        return options

    @options.setter
    def options(self, value: Mapping[str, Any]) -> None:
        self["options"] = dict(value)

    @property
    def immutable(self) -> bool:
        return bool(self.get("immutable"))

    @immutable.setter
    def immutable(self, value: bool) -> None:
        self["immutable"] = bool(value)

    @property
    def subtask_type(self) -> str | None:
        value = self.get("subtask_type")
        return None if value is None else str(value)

    @property
    def id(self) -> str | None:
        """The id of the result this signature gives (known once frozen or set)."""
        value = self.options.get("task_id")
        return None if value is None else str(value)

    @property
    def app(self) -> Conveyor:
        if self._app is not None:
            return self._app
        from .app import current_app

        return current_app()

    @property
    def type(self) -> Task:
        """The registered task this signature calls."""
        return self.app.tasks[self.task]

    # -- building -----------------------------------------------------------------------

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Update the send options in place; returns the signature for chaining."""
        if immutable is not None:
            self.immutable = immutable
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self.immutable = immutable

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A deep copy; unless immutable, ``args`` are prepended and ``kwargs`` merged."""
        sig = copy.deepcopy(self)
        if not self.immutable and not self.subtask_type:
            sig.args = (*(args or ()), *self.args)
            sig.kwargs = {**self.kwargs, **(kwargs or {})}
        sig.options.update(options)
        return sig

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        new = type(self).__new__(type(self))
        dict.__init__(new, {key: copy.deepcopy(value, memo) for key, value in self.items()})
        new._app = self._app
        return new

    def __reduce__(self) -> Any:
        return (signature, (dict(self),))

    def replace(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Signature:
        """A copy with the arguments or options swapped (not merged)."""
        sig = copy.deepcopy(self)
        if args is not None:
            sig.args = tuple(args)
        if kwargs is not None:
            sig.kwargs = dict(kwargs)
        if options is not None:
            sig.options = dict(options)
        return sig

    def link(self, callback: Mapping[str, Any]) -> Signature:
        """Apply ``callback`` to this task's result when it succeeds; returns the callback."""
        sig = _coerce(callback, self._app)
        self.options["link"] = [*_as_list(self.options.get("link")), sig]
        return sig

    def link_error(self, errback: Mapping[str, Any]) -> Signature:
        """Run ``errback`` when this fails; returns the errback.

        An errback whose task takes ``(request, exc, traceback)`` runs in the worker right
        after the failure, as in Celery; any other errback is sent as a task with the
        failed task's id as its first argument.
        """
        sig = _coerce(errback, self._app)
        self.options["link_error"] = [*_as_list(self.options.get("link_error")), sig]
        return sig

    def on_error(self, errback: Mapping[str, Any]) -> Signature:
        """``link_error`` that returns this signature, to go on building a chain."""
        self.link_error(errback)
        return self

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        other = _coerce(other, self._app)
        if isinstance(self, group):
            return chord(self, other, app=self._app)
        if isinstance(self, chain):
            extra = other.tasks if isinstance(other, chain) else [other]
            joined = chain(*self.tasks, *extra, app=self._app)
            joined.options.update(copy.deepcopy(self.options))
            return joined
        if isinstance(other, chain):
            joined = chain(self, *other.tasks, app=self._app)
            joined.options.update(copy.deepcopy(other.options))
            return joined
        return chain(self, other, app=self._app)

    def __invert__(self) -> Any:
        return self.apply_async().get()

    # -- sending ------------------------------------------------------------------------

    def freeze(self, _id: str | None = None) -> AsyncResult | GroupResult:
        """Give every node its id now (in place) and return the result it will have."""
        if _id is not None:
            _set_result_id(self, _id)
        _freeze(self)
        result: AsyncResult | GroupResult = _result(self, self.app, None)
        return result

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Send it; returns the result handle (AsyncResult, or GroupResult for a group)."""
        app = self.app
        if app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        merged = {**self.options, **options}
        if not self.subtask_type and not merged.get("link") and not merged.get("link_error"):
            sig = self.clone(args, kwargs, **options)  # a lone task: the task's own send path
            task = app.tasks.get(sig.task)
            if task is not None:
                return task.apply_async(sig.args, sig.kwargs, **sig.options)
            return app.send_task(sig.task, sig.args, sig.kwargs, **sig.options)
        return send(self, app, tuple(args or ()), dict(kwargs or {}), options)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run it here and now (``Task.apply`` for each task); returns an EagerResult."""
        sig = self.clone(args, kwargs)
        opts = {k: v for k, v in {**sig.options, **options}.items() if k not in _NOT_INHERITED}
        if "task_id" in sig.options:
            opts["task_id"] = sig.options["task_id"]
        return sig.type.apply(sig.args, sig.kwargs, **opts)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function here, with the partial arguments completed."""
        sig = self.clone(args, kwargs)
        return sig.type(*sig.args, **sig.kwargs)

    # -- data ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data: what the JSON encoding holds."""
        from .serialization import decode_value, encode_value

        data: dict[str, Any] = decode_value(encode_value(self))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: Conveyor | None = None) -> Signature:
        return signature_from_dict(data, app)

    def __eq__(self, other: object) -> bool:
        """Equal when their data is: tuples and lists, signatures and dicts compare alike."""
        if not isinstance(other, Mapping):
            return NotImplemented
        try:
            return bool(_plain(self) == _plain(other))
        except (TypeError, ValueError):
            return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}{'!' if self.immutable else ''}({', '.join(parts)})"


class chain(Signature):
    """``chain(a.s(), b.s(), c.si())`` or ``a.s() | b.s()``: each result feeds the next."""

    def __init__(self, *tasks: Any, app: Conveyor | None = None, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
            tasks = tuple(tasks[0])
        sigs = [_coerce(t, app) for t in tasks]
        super().__init__(
            CHAIN,
            (),
            {"tasks": sigs},
            options,
            app=app,
            subtask_type="chain",
        )

    @property
    def tasks(self) -> list[Signature]:
        tasks = [_coerce(t, self._app) for t in self.kwargs.get("tasks", [])]
        self.kwargs["tasks"] = tasks
        return tasks

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        result: Any = None
        for i, task in enumerate(self.tasks):
            if i == 0:
                result = task.apply(args, kwargs, **options)
            else:
                result = task.apply((_eager_value(result),), **options)
        return result

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks) if self.tasks else "chain()"


class group(Signature):
    """``group(process.s(i) for i in ids)``: run in parallel; a GroupResult in that order."""

    def __init__(self, *tasks: Any, app: Conveyor | None = None, **options: Any) -> None:
        if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
            tasks = tuple(tasks[0])
        sigs = [_coerce(t, app) for t in tasks]
        super().__init__(
            GROUP,
            (),
            {"tasks": sigs},
            options,
            app=app,
            subtask_type="group",
        )

    @property
    def tasks(self) -> list[Signature]:
        tasks = [_coerce(t, self._app) for t in self.kwargs.get("tasks", [])]
        self.kwargs["tasks"] = tasks
        return tasks

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        from .result import GroupResult

        results = [task.apply(args, kwargs, **options) for task in self.tasks]
        return GroupResult(self.id or _new_id(), results, app=self._app)

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
        head = header if isinstance(header, group) else _as_group(header, app)
        super().__init__(
            CHORD,
            (),
            {"header": head, "body": None if body is None else _coerce(body, app)},
            options,
            app=app,
            subtask_type="chord",
        )

    @property
    def header(self) -> group:
        head = self.kwargs["header"]
        if not isinstance(head, group):
            head = _as_group(head, self._app)
            self.kwargs["header"] = head
        return head

    @property
    def body(self) -> Signature:
        body = self.kwargs.get("body")
        if body is None:
            raise ValueError("this chord has no callback: chord(header, callback)")
        sig = _coerce(body, self._app)
        self.kwargs["body"] = sig
        return sig

    @property
    def tasks(self) -> list[Signature]:
        return self.header.tasks

    def __call__(self, body: Any = None, **options: Any) -> Any:
        if body is not None:
            self.kwargs["body"] = _coerce(body, self._app)
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
            {"task": _coerce(task, app), "it": [list(item) for item in it], "n": int(n)},
            options,
            app=app,
            subtask_type="chunks",
        )

    def group(self) -> group:
        task = _coerce(self.kwargs["task"], self._app)
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
    return Signature(MAP, (), {"task": _coerce(task, app), "it": list(it)}, app=app)


def xstarmap(task: Any, it: Iterable[Any], app: Conveyor | None = None) -> Signature:
    """One task that calls ``task(*item)`` for each item: ``add.starmap(pairs)``."""
    return Signature(
        STARMAP, (), {"task": _coerce(task, app), "it": [list(i) for i in it]}, app=app
    )


# -- conversion ---------------------------------------------------------------------------

_KINDS: dict[str, type[Signature]] = {
    "chain": chain,
    "group": group,
    "chord": chord,
    "chunks": chunks,
}


def signature_from_dict(data: Mapping[str, Any], app: Conveyor | None = None) -> Signature:
    """Rebuild a signature (of the right kind) from its dict form."""
    kind = _KINDS.get(str(data.get("subtask_type") or ""))
    sig = (kind or Signature).__new__(kind or Signature)
    Signature.__init__(sig, data, app=app)
    return sig


def _coerce(value: Any, app: Conveyor | None) -> Signature:
    if isinstance(value, Signature):
        if app is not None and value._app is None:
            value._app = app
        return value
    if isinstance(value, Mapping):
        return signature_from_dict(value, app)
    if hasattr(value, "s") and hasattr(value, "name"):
        sig: Signature = value.s()
        return sig
    raise TypeError(f"not a signature: {value!r} (use task.s(...) or signature('name'))")


def _as_group(value: Any, app: Conveyor | None) -> group:
    if isinstance(value, group):
        return value
    if isinstance(value, chunks):
        return value.group()
    if isinstance(value, Mapping):
        sig = _coerce(value, app)
        if isinstance(sig, group):
            return sig
        return group([sig], app=app)
    return group(list(value), app=app)


def maybe_signature(value: Any, app: Conveyor | None = None) -> Signature | None:
    """None stays None; a dict becomes a signature; a signature is returned as it is."""
    if value is None:
        return None
    return _coerce(value, app)


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


# -- freezing -----------------------------------------------------------------------------


def _inherit(child: Signature, options: Mapping[str, Any], entry: bool) -> None:
    """Give ``child`` the container's send options it does not set itself."""
    for key, value in options.items():
        if key in _NOT_INHERITED or (key in _ENTRY_ONLY and not entry):
            continue
        if key == "headers":
            child.options["headers"] = {**(value or {}), **(child.options.get("headers") or {})}
        else:
            child.options.setdefault(key, copy.deepcopy(value))


def _attach(child: Signature, key: str, sigs: Sequence[Signature], fresh: bool) -> None:
    """Add link callbacks; ``fresh`` copies get their own ids (one per task they are on)."""
    if not sigs:
        return
    extra = []
    for sig in sigs:
        sig = copy.deepcopy(sig)
        if fresh:
            _clear_ids(sig)
        extra.append(sig)
    child.options[key] = [*_as_list(child.options.get(key)), *extra]


def _clear_ids(sig: Signature) -> None:
    sig.options.pop("task_id", None)
    for sub in _children(sig):
        _clear_ids(sub)


def _children(sig: Signature) -> list[Signature]:
    if isinstance(sig, chain | group):
        return sig.tasks
    if isinstance(sig, chord):
        return [*sig.header.tasks, sig.body]
    return []


def _set_result_id(sig: Signature, task_id: str) -> None:
    if isinstance(sig, chain):
        if sig.tasks:
            _set_result_id(sig.tasks[-1], task_id)
    elif isinstance(sig, chord):
        _set_result_id(sig.body, task_id)
    else:
        sig.options["task_id"] = task_id


def _push_down(sig: Signature) -> None:
    """Hand a container's options to its children (once: the container keeps only ids)."""
    options = sig.options
    links = [_coerce(s, sig._app) for s in _as_list(options.pop("link", None))]
    errbacks = [_coerce(s, sig._app) for s in _as_list(options.pop("link_error", None))]
    result_id = options.get("task_id") if not isinstance(sig, group) else None
    inherited = {k: v for k, v in options.items() if k not in _NOT_INHERITED}
    for key in inherited:
        options.pop(key, None)
    if isinstance(sig, chain):
        tasks = sig.tasks
        if result_id and tasks:
            _set_result_id(tasks[-1], str(result_id))
        for i, task in enumerate(tasks):
            _inherit(task, inherited, entry=i == 0)
            _attach(task, "link_error", errbacks, fresh=True)
        if tasks:
            _attach(tasks[-1], "link", links, fresh=False)
    elif isinstance(sig, group):
        for task in sig.tasks:
            _inherit(task, inherited, entry=True)
            _attach(task, "link", links, fresh=True)
            _attach(task, "link_error", errbacks, fresh=True)
    elif isinstance(sig, chord):
        if result_id:
            _set_result_id(sig.body, str(result_id))
        for task in sig.header.tasks:
            _inherit(task, inherited, entry=True)
        _inherit(sig.body, inherited, entry=False)
        _attach(sig.body, "link", links, fresh=False)
        _attach(sig.body, "link_error", errbacks, fresh=False)


def _flatten_chain(tasks: list[Signature]) -> list[Signature]:
    out: list[Signature] = []
    for task in tasks:
        if isinstance(task, chain):
            _push_down(task)
            out.extend(_flatten_chain(task.tasks))
        else:
            out.append(task)
    return out


def _flatten_group(tasks: list[Signature]) -> list[Signature]:
    out: list[Signature] = []
    for task in tasks:
        if isinstance(task, chunks):
            task = task.group()
        if isinstance(task, group):
            _push_down(task)
            out.extend(_flatten_group(task.tasks))
        else:
            out.append(task)
    return out


def _freeze(sig: Signature) -> None:
    """Assign every id, normalise the tree and hand options down. Idempotent."""
    if isinstance(sig, chunks):
        raise TypeError("freeze the chunks' group(), not the chunks")
    if isinstance(sig, chain):
        _push_down(sig)
        tasks = _flatten_chain(sig.tasks)
        if not tasks:
            raise ValueError("an empty chain has nothing to run")
        i = 0
        while i < len(tasks) - 1:
            if isinstance(tasks[i], group):
                body = tasks.pop(i + 1)
                tasks[i] = chord(tasks[i], body, app=sig._app)
            else:
                i += 1
        sig.kwargs["tasks"] = tasks
        for task in tasks:
            _freeze(task)
    elif isinstance(sig, group):
        _push_down(sig)
        sig.options["task_id"] = sig.options.get("task_id") or _new_id()
        sig.kwargs["tasks"] = _flatten_group(sig.tasks)
        for task in sig.tasks:
            _freeze(task)
    elif isinstance(sig, chord):
        _push_down(sig)
        _freeze(sig.header)
        _freeze(sig.body)
    else:
        sig.options["task_id"] = sig.options.get("task_id") or _new_id()
        for key in ("link", "link_error"):
            if key in sig.options:
                linked = [_coerce(s, sig._app) for s in _as_list(sig.options[key])]
                for callback in linked:
                    _freeze(callback)
                sig.options[key] = linked


# -- the shape of a frozen tree -----------------------------------------------------------


def result_id(sig: Signature) -> str:
    """The id of the result a frozen node gives."""
    if isinstance(sig, chain):
        return result_id(sig.tasks[-1])
    if isinstance(sig, chord):
        return result_id(sig.body)
    return str(sig.options["task_id"])


def entry_id(sig: Signature) -> str | None:
    """The id of the first task sent when a frozen node is applied."""
    if isinstance(sig, chain):
        return entry_id(sig.tasks[0]) if sig.tasks else None
    if isinstance(sig, group):
        return entry_id(sig.tasks[0]) if sig.tasks else None
    if isinstance(sig, chord):
        first = entry_id(sig.header)
        return first if first is not None else entry_id(sig.body)
    return str(sig.options["task_id"])


def leaves(sig: Signature) -> list[Signature]:
    """The tasks whose results are a node's results: what a group or chord waits for."""
    if isinstance(sig, chain):
        return leaves(sig.tasks[-1]) if sig.tasks else []
    if isinstance(sig, group):
        return [leaf for task in sig.tasks for leaf in leaves(task)]
    if isinstance(sig, chord):
        return leaves(sig.body)
    return [sig]


def walk(sig: Signature) -> Iterator[Signature]:
    """Every task in a node (not its link callbacks), with its chain continuations."""
    if sig.subtask_type:
        for sub in _children(sig):
            yield from walk(sub)
    else:
        yield sig
    for rest in sig.options.get("chain") or ():
        yield from walk(_coerce(rest, sig._app))


def task_ids(sig: Signature) -> list[tuple[str, str]]:
    """(id, task name) of every task in a frozen node that keeps its result."""
    return [
        (str(t.options["task_id"]), t.task) for t in walk(sig) if not t.options.get("ignore_result")
    ]


def _result(sig: Signature, app: Conveyor, parent: Any) -> Any:
    from .result import AsyncResult, GroupResult

    if isinstance(sig, chain):
        result = parent
        for task in sig.tasks:
            result = _result(task, app, result)
        return result
    if isinstance(sig, group):
        members = [_result(task, app, None) for task in sig.tasks]
        return GroupResult(str(sig.options["task_id"]), members, parent=parent, app=app)
    if isinstance(sig, chord):
        header = sig.header
        head = GroupResult(
            str(header.options["task_id"]),
            [_result(leaf, app, None) for leaf in leaves(header)],
            parent=parent,
            app=app,
        )
        return _result(sig.body, app, head)
    return AsyncResult(
        str(sig.options["task_id"]), app=app, task=app.tasks.get(sig.task), parent=parent
    )


# -- applying -----------------------------------------------------------------------------


@dataclass
class Context:
    """Where a node is applied: its parent's result, ids, headers and what follows it."""

    prev: tuple[Any, ...] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    root_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    rest: list[Signature] = field(default_factory=list)
    """The chain continuation after this node, last step first (as in ``Message.chain``)."""

    def but(self, **changes: Any) -> Context:
        return dataclasses.replace(self, **changes)


class Plan:
    """The messages and bookkeeping of one send, written in a handful of calls by ``flush``.

    A ``fresh`` plan (sending a workflow) raises on a bad node and publishes through
    ``app.publish`` (so ``app.batch()`` applies). A plan made in a worker to continue a
    workflow collects bad nodes in ``errors`` instead, and leaves out any task that
    already has a stored record: that is a continuation published before a crash, which
    has run or is running, so publishing it again would run it twice.
    """

    def __init__(self, app: Conveyor, fresh: bool) -> None:
        self.app = app
        self.fresh = fresh
        self.items: list[tuple[Message, Task | None]] = []
        self.envelopes: list[Any] = []
        self.records: list[tuple[str, bytes]] = []
        self.errors: list[tuple[Signature, Context, BaseException]] = []

    # -- building

    def apply(self, sig: Signature, ctx: Context) -> None:
        """Add the messages that start the frozen node ``sig`` in ``ctx``."""
        if isinstance(sig, chunks):
            sig = sig.group()
            _freeze(sig)
        if isinstance(sig, chain):
            tasks = sig.tasks
            if not tasks:
                return
            rest = [*ctx.rest, *reversed(tasks[1:])]
            self.apply(tasks[0], ctx.but(rest=rest))
        elif isinstance(sig, group):
            self._group(sig, ctx)
        elif isinstance(sig, chord):
            self._chord(sig, ctx)
        else:
            self._task(sig, ctx)

    def _group(self, sig: group, ctx: Context) -> None:
        if ctx.rest:
            # A group with work after it: the work waits for the whole group (a chord).
            body = ctx.rest[-1]
            upgraded = chord(sig, body, app=sig._app)
            self._chord(upgraded, ctx.but(rest=ctx.rest[:-1]))
            return
        gid = str(sig.options["task_id"])
        tasks = sig.tasks
        for index, task in enumerate(tasks):
            for leaf in leaves(task):
                leaf.options["group_id"] = gid
                leaf.options["group_index"] = index
        self._save_group(gid, [_result(task, self.app, None) for task in tasks])
        for task in tasks:
            self.apply(task, ctx.but(rest=[]))

    def _chord(self, sig: chord, ctx: Context) -> None:
        header, body = sig.header, sig.body
        gid = str(header.options["task_id"])
        if ctx.rest:
            body.options["chain"] = [*ctx.rest, *_as_list(body.options.get("chain"))]
        members = leaves(header)
        callback_id = entry_id(body)
        for index, leaf in enumerate(members):
            leaf.options["group_id"] = gid
            leaf.options["group_index"] = index
            leaf.options["ignore_result"] = False
            leaf.options["chord"] = {
                "id": gid,
                "size": len(members),
                "index": index,
                "callback": body,
                "callback_id": callback_id,
            }
        self._save_group(gid, [_result(leaf, self.app, None) for leaf in members])
        if not members:
            rest = [_coerce(s, self.app) for s in _as_list(body.options.pop("chain", None))]
            self.apply(body, ctx.but(prev=([],), kwargs={}, rest=rest))
            return
        for task in header.tasks:
            self.apply(task, ctx.but(rest=[]))

    def _save_group(self, gid: str, results: list[Any]) -> None:
        from .result import GroupResult

        self.records.append(GroupResult(gid, results, app=self.app).encode())

    def _task(self, sig: Signature, ctx: Context) -> None:
        app = self.app
        try:
            task = app.tasks.get(sig.task)
            if sig.immutable:
                args, kwargs = sig.args, dict(sig.kwargs)
            else:
                args = (*(ctx.prev or ()), *sig.args)
                kwargs = {**ctx.kwargs, **sig.kwargs}
            options = {k: v for k, v in sig.options.items() if k not in _WORKFLOW_OPTIONS}
            options["task_id"] = sig.options["task_id"]
            for key in ("group_id", "group_index"):
                if sig.options.get(key) is not None:
                    options[key] = sig.options[key]
            options["headers"] = {**ctx.headers, **(sig.options.get("headers") or {})}
            if ctx.root_id:
                options["root_id"] = ctx.root_id
            if ctx.parent_id:
                options["parent_id"] = ctx.parent_id
            message = app.build_message(task, args, kwargs, options, name=sig.task)
            message = message.replace(
                chain=list(ctx.rest),
                callbacks=_as_list(sig.options.get("link")),
                errbacks=_as_list(sig.options.get("link_error")),
                chord=sig.options.get("chord"),
            )
            envelope = None if self.fresh else app.envelope(message, task)
        except Exception as exc:
            if self.fresh:
                raise
            self.errors.append((sig, ctx, exc))
            return
        self.items.append((message, task))
        if envelope is not None:
            self.envelopes.append(envelope)

    # -- writing

    def flush(self) -> None:
        """Save group records, then publish: records first, so no task can miss them."""
        app = self.app
        if self.records:
            app.backend.set_many(self.records, app.conf.result_expires)
        if self.fresh:
            if self.items:
                app.publish(self.items)
            return
        if not self.envelopes:
            return
        ids = [message.id for message, _ in self.items]
        found = app.results.read_many(ids)
        envelopes = [e for e, record in zip(self.envelopes, found, strict=True) if record is None]
        if envelopes:
            app.broker.publish(envelopes)


def send(
    sig: Signature,
    app: Conveyor,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: Mapping[str, Any],
) -> Any:
    """Freeze a copy of ``sig`` and send it: the client side of every ``apply_async``."""
    node = copy.deepcopy(sig)
    node._app = app
    node.options.update(options)
    root_id = node.options.pop("root_id", None)
    parent_id = node.options.pop("parent_id", None)
    prev: tuple[Any, ...] | None = None
    if node.subtask_type:
        prev = args or None
    elif not node.immutable:
        node.args = (*args, *node.args)
        node.kwargs = {**node.kwargs, **kwargs}
        kwargs = {}
    _freeze(node)
    request = current_request()
    ctx = Context(
        prev=prev,
        kwargs=kwargs if node.subtask_type else {},
        parent_id=parent_id or (request.id if request else None),
        root_id=root_id or (request.root_id if request else None) or entry_id(node),
        headers={},
    )
    plan = Plan(app, fresh=True)
    plan.apply(node, ctx)
    plan.flush()
    return _result(node, app, None)


# -- built-in tasks -----------------------------------------------------------------------


def _register_builtins() -> None:
    """``conveyor.map``, ``conveyor.starmap`` and ``conveyor.accumulate``, in every app."""
    from .app import make_task

    def run_each(task: Any, items: Iterable[Any], call: Callable[[Any, Any], Any]) -> list[Any]:
        from .app import current_app

        fun = _coerce(task, None).clone()
        fun._app = fun._app or current_app()
        return [call(fun.type, item) for item in items]

    def xmap_task(task: Any, it: list[Any]) -> list[Any]:
        return run_each(task, it, lambda fun, item: fun(item))

    def xstarmap_task(task: Any, it: list[Any]) -> list[Any]:
        return run_each(task, it, lambda fun, item: fun(*item))

    def accumulate(*args: Any, index: int | None = None) -> Any:
        return args[index] if index is not None else list(args)

    for fun, name in ((xmap_task, MAP), (xstarmap_task, STARMAP), (accumulate, ACCUMULATE)):
        make_task(fun, None, {"name": name, "typing": False})


_register_builtins()
