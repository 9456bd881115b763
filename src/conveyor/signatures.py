"""Signatures: a task call as plain data, the unit every workflow is built from.

A signature *is* a dict (``task``, ``args``, ``kwargs``, ``options``, ``subtask_type``,
``immutable``), so it encodes to JSON as it is, can be passed as a task argument or
stored, and comes back with ``signature(data)``.

This module holds the ``Signature`` base class and what every part of the canvas shares:
copying a tree of signatures, turning dicts back into signatures, and the options that
are workflow bookkeeping rather than send options. A signature asks its app to freeze
or send it (the app knows ``conveyor.freeze`` and ``conveyor.plan``); ``conveyor.canvas``
registers its kinds (chain, group, chord, chunks) in ``KINDS``, where rebuilding a
signature from a dict and ``|`` find them, and ``conveyor.stamps`` lends its ``stamp``
through ``set_stamper``: this module imports neither.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .current import current_app

if TYPE_CHECKING:
    from .app import Conveyor
    from .groupresult import GroupResult
    from .result import AnyResult
    from .task import AnyTask

__all__ = [
    "KINDS",
    "NOT_INHERITED",
    "WORKFLOW_OPTIONS",
    "Signature",
    "as_list",
    "as_operand",
    "as_signature",
    "copy_tree",
    "set_stamper",
    "signature_from_dict",
]

# Options that freezing and sending set (ids, links, a chord member's entry), and those
# taken from the current task: none is handed down from a container to its tasks.
WORKFLOW_OPTIONS = frozenset(
    {"task_id", "link", "link_error", "chain", "chord", "group_id", "group_index"}
)
_CONTEXT_OPTIONS = frozenset({"root_id", "parent_id"})
NOT_INHERITED = WORKFLOW_OPTIONS | _CONTEXT_OPTIONS


def copy_tree(sig: Signature) -> Signature:
    """A copy to freeze and change: new signatures and option containers all the way
    down; argument values are shared (nothing here changes them). Much cheaper than
    ``deepcopy`` for a group of ten thousand."""
    new = type(sig).__new__(type(sig))
    kwargs = dict(sig.get("kwargs") or {})
    if sig.subtask_type:
        for key, value in kwargs.items():
            if isinstance(value, Mapping) and "task" in value:
                kwargs[key] = copy_tree(as_signature(value, sig._app))
            elif key == "tasks":
                kwargs[key] = [copy_tree(as_signature(item, sig._app)) for item in value]
    options = dict(sig.get("options") or {})
    for key in ("link", "link_error", "chain"):
        if key in options:
            options[key] = [
                copy_tree(as_signature(item, sig._app)) for item in as_list(options[key])
            ]
    for key in ("headers", "chord"):
        if isinstance(options.get(key), Mapping):
            options[key] = dict(options[key])
    dict.__init__(new, sig)
    new["kwargs"] = kwargs
    new["options"] = options
    new._app = sig._app
    if sig._type is not None:
        new._type = sig._type
    return new


def _added(items: list[Any], sig: Signature) -> list[Any]:
    """``items`` with ``sig`` at the end unless an equal signature is there already: linking
    the same callback twice runs it once, as in Celery."""
    return items if sig in items else [*items, sig]


def _json_round_trip(value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


def _find_app(sig: Signature) -> Conveyor | None:
    if sig._app is not None:
        return sig._app
    kwargs = sig.get("kwargs") or {}
    for key in ("tasks", "header", "body", "task"):
        value = kwargs.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Signature):
                found = _find_app(item)
                if found is not None:
                    return found
    return None


def as_list(value: Any) -> list[Any]:
    """An option that holds one signature or several (``link``, ``chain``), as a list."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    return list(value)


class Signature(dict[str, Any]):
    """``add.s(2, 2)``: a task name with arguments and send options; a dict underneath."""

    _type: Any = None

    def __init__(
        self,
        task: Any = None,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        immutable: bool = False,
        app: Conveyor | None = None,
        subtask_type: str | None = None,
        type: Any = None,  # Celery's name: the task object it calls
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
        if type is not None:
            self._type = type

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

    @subtask_type.setter
    def subtask_type(self, value: str | None) -> None:
        """A subclass may name its own kind (registered with ``register_type``)."""
        self["subtask_type"] = value

    @classmethod
    def register_type(cls, name: str | None = None) -> Callable[[type[Signature]], type[Signature]]:
        """Class decorator (Celery's): rebuilding a dict whose ``subtask_type`` is ``name``
        (the class's name by default) gives an instance of the decorated class."""

        def register(subclass: type[Signature]) -> type[Signature]:
            KINDS[name or subclass.__name__] = subclass
            return subclass

        return register

    @property
    def id(self) -> str | None:
        """The id of the result this signature gives (known once frozen or set)."""
        value = self.options.get("task_id")
        return None if value is None else str(value)

    @property
    def app(self) -> Conveyor:
        """Its own app; for a chain, group or chord without one, its first task's app."""
        if self._app is not None:
            return self._app
        found = _find_app(self)
        if found is not None:
            self._app = found
            return found
        return current_app()

    @property
    def type(self) -> AnyTask:
        """The task this signature calls: the one given as ``type=``, else the registered
        task of its name."""
        if self._type is not None:
            given: AnyTask = self._type
            return given
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
        """A copy to change freely; unless immutable, ``args`` are prepended and ``kwargs``
        merged (the partial arguments a parent result completes)."""
        sig = copy_tree(self)
        if not self.immutable and not self.subtask_type:
            sig.args = (*(args or ()), *self.args)
            sig.kwargs = {**self.kwargs, **(kwargs or {})}
        sig.options.update(options)
        return sig

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        new = type(self).__new__(type(self))
        dict.__init__(new, {key: copy.deepcopy(value, memo) for key, value in self.items()})
        new._app = self._app
        if self._type is not None:
            new._type = self._type
        return new

    def __reduce__(self) -> Any:
        return (signature_from_dict, (dict(self),))

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
        sig = as_signature(callback, self._app)
        self.options["link"] = _added(as_list(self.options.get("link")), sig)
        return sig

    def link_error(self, errback: Mapping[str, Any]) -> Signature:
        """Run ``errback`` when this fails; returns the errback.

        As in Celery, an errback that still needs two or more positional arguments after
        its own (``def handler(request, exc, traceback)``) is called in the worker right
        after the failure; any other (``def on_error(task_id)``) is sent as a task with the
        failed task's id as its first argument.
        """
        sig = as_signature(errback, self._app)
        self.options["link_error"] = _added(as_list(self.options.get("link_error")), sig)
        return sig

    def flatten_links(self) -> list[Signature]:
        """This signature and every callback linked below it, depth first (Celery's)."""
        found: list[Signature] = [self]
        for callback in as_list(self.options.get("link")):
            found.extend(as_signature(callback, self._app).flatten_links())
        return found

    def on_error(self, errback: Mapping[str, Any]) -> Signature:
        """``link_error`` that returns this signature, to go on building a chain."""
        self.link_error(errback)
        return self

    def stamp(self, visitor: Any = None, append_stamps: bool = False, **headers: Any) -> Any:
        """Stamp this signature, and every task a chain, group or chord holds, with custom
        headers (``conveyor.stamps``): ``sig.stamp(batch="b-7")``."""
        if _stamper is None:
            raise RuntimeError("stamping needs conveyor.stamps: import conveyor first")
        return _stamper(self, visitor, append_stamps, **headers)

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        """``task | x``: a chain. A group of one is its task; a chain's steps are taken in
        (``conveyor.canvas`` gives chain, group and chord their own rules, as Celery's)."""
        kinds: Mapping[str, Any] = KINDS  # canvas's subclasses, which this module cannot name
        chain, group = kinds["chain"], kinds["group"]
        other = as_operand(other, self._app)
        if isinstance(other, chain):
            return chain(self, *other.unchain_tasks(), app=self._app)  # type: ignore[no-any-return]
        if isinstance(other, group) and len(other.tasks) == 1:
            other = other.tasks[0]
        return chain(self, other, app=self._app)  # type: ignore[no-any-return]

    def __invert__(self) -> Any:
        return self.apply_async().get()

    # -- sending ------------------------------------------------------------------------

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: str | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> AnyResult | GroupResult:
        """Give every node its id now (in place) and return the result it will have.

        The other arguments are Celery's: a task's place in a workflow, kept in its
        options; a group takes ``group_id`` as its own id when it has none yet."""
        if self.subtask_type is None:
            given: dict[str, Any] = {"group_id": group_id, "chord": chord, "root_id": root_id}
            given.update(parent_id=parent_id, group_index=group_index)
            self.options.update({k: v for k, v in given.items() if v is not None})
        elif _id is None and group_id is not None and self.subtask_type == "group":
            _id = self.options.get("task_id") or group_id
        return self.app.freeze_canvas(self, _id)

    def AsyncResult(self, task_id: str) -> AnyResult:
        """The result handle for ``task_id`` of this signature's task (or of its app when
        this process has not registered the task)."""
        task = self.app.tasks.get(self.task)
        if task is not None:
            return task.AsyncResult(task_id)
        return self.app.AsyncResult(task_id)

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
        lone = not (merged.get("link") or merged.get("link_error") or merged.get("chord"))
        if not self.subtask_type and lone:
            sig = self.clone(args, kwargs, **options)  # a lone task: the task's own send path
            task = sig._type or app.tasks.get(sig.task)
            if task is not None:
                return task.apply_async(sig.args, sig.kwargs, **sig.options)
            return app.send_task(sig.task, sig.args, sig.kwargs, **sig.options)
        return app.send_canvas(self, tuple(args or ()), dict(kwargs or {}), options)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    async def aapply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """``apply_async`` for coroutines: ``await group(...).aapply_async()``. A workflow
        is frozen, planned and published in a worker thread, so the event loop runs on."""
        return await asyncio.to_thread(self.apply_async, args, kwargs, **options)

    async def adelay(self, *args: Any, **kwargs: Any) -> Any:
        return await self.aapply_async(args, kwargs)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run it here and now (``Task.apply`` for each task); returns an EagerResult."""
        sig = self.clone(args, kwargs)
        opts = {k: v for k, v in {**sig.options, **options}.items() if k not in NOT_INHERITED}
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
            return bool(_json_round_trip(self) == _json_round_trip(other))
        except (TypeError, ValueError):
            return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}{'!' if self.immutable else ''}({', '.join(parts)})"


# -- conversion ---------------------------------------------------------------------------

KINDS: dict[str, type[Signature]] = {}
"""The ``Signature`` subclass for each ``subtask_type``. ``conveyor.canvas`` adds its
kinds (chain, group, chord, chunks) when it is imported, which the package does first."""

_stamper: Callable[..., Signature] | None = None


def set_stamper(stamp: Callable[..., Signature]) -> None:
    """How ``Signature.stamp`` stamps a tree: ``conveyor.stamps`` gives its ``stamp``."""
    global _stamper
    _stamper = stamp


def signature_from_dict(data: Mapping[str, Any], app: Conveyor | None = None) -> Signature:
    """Rebuild a signature (of the right kind) from its dict form."""
    kind = KINDS.get(str(data.get("subtask_type") or ""))
    if kind is None and data.get("subtask_type"):  # a kind this process did not register:
        kind = KINDS.get(str(data.get("task") or ""))  # the chain, group... it is made on
    sig = (kind or Signature).__new__(kind or Signature)
    Signature.__init__(sig, data, app=app)
    return sig


def as_operand(value: Any, app: Conveyor | None) -> Signature:
    """The right side of ``|``: a signature, its dict form or a task; anything else is a
    TypeError, as ``chain | 10`` is in Celery."""
    if value is None or not (isinstance(value, Mapping) or hasattr(value, "s")):
        raise TypeError(f"cannot chain {value!r}: use a signature (task.s(...))")
    return as_signature(value, app)


def as_signature(value: Any, app: Conveyor | None) -> Signature:
    """``value`` (a signature, its dict form, or a task) as a signature on ``app``."""
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
