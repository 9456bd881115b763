"""Freezing a canvas, and the shape of a frozen tree.

Freezing gives every node of a workflow its id before anything is sent (a task id for
each task, a group id for each group), flattens nested chains and groups, turns a group
followed by more work in a chain into a chord, and hands a container's options down to
the tasks in it (a task's own options win; ``countdown`` and ``eta`` reach only the tasks
sent first). The result handles therefore exist before anything runs.

The rest of the module reads a frozen tree: the id of the result a node gives, the first
task it sends, the leaves a group or chord waits for, every task in it, and its result
handle. Sending (``conveyor.plan``), continuing a workflow in the worker
(``conveyor.workflow``) and ``Signature.freeze`` all need these, so they live with
freezing, apart from the classes (``conveyor.canvas``) and from building messages.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .canvas import chain, chord, chunks, group
from .groupresult import GroupResult
from .ids import new_id
from .result import AsyncResult
from .signatures import NOT_INHERITED, Signature, as_list, as_signature, copy_tree

if TYPE_CHECKING:
    from .app import Conveyor

__all__ = [
    "entry_id",
    "freeze_result",
    "freeze_tree",
    "header_shape",
    "inherit",
    "leaves",
    "result_id",
    "result_of",
    "task_ids",
    "walk",
]

_ENTRY_ONLY = frozenset({"countdown", "eta"})

# -- freezing -----------------------------------------------------------------------------


def inherit(child: Signature, options: Mapping[str, Any], entry: bool) -> None:
    """Give ``child`` the container's send options it does not set itself."""
    for key, value in options.items():
        if key in NOT_INHERITED or (key in _ENTRY_ONLY and not entry):
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
    child.options[key] = [*as_list(child.options.get(key)), *extra]


def _immutable(sig: Signature) -> Signature:
    frozen = sig.clone()
    frozen.immutable = True
    return frozen


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
    links = [as_signature(s, sig._app) for s in as_list(options.pop("link", None))]
    errbacks = [as_signature(s, sig._app) for s in as_list(options.pop("link_error", None))]
    result_id = options.get("task_id") if not isinstance(sig, group) else None
    inherited = {k: v for k, v in options.items() if k not in NOT_INHERITED}
    for key in inherited:
        options.pop(key, None)
    if isinstance(sig, chain):
        tasks = sig.tasks
        if result_id and tasks:
            _set_result_id(tasks[-1], str(result_id))
        for i, task in enumerate(tasks):
            inherit(task, inherited, entry=i == 0)
            _attach(task, "link_error", errbacks, fresh=True)
        if tasks:
            _attach(tasks[-1], "link", links, fresh=False)
    elif isinstance(sig, group):
        tasks = sig.tasks
        for task in tasks:
            inherit(task, inherited, entry=True)
            _attach(task, "link_error", errbacks, fresh=True)
        if tasks:  # as ``group.link`` does: once, on the first member, immutable
            _attach(tasks[0], "link", [_immutable(link) for link in links], fresh=False)
    elif isinstance(sig, chord):
        if result_id:
            _set_result_id(sig.body, str(result_id))
        for task in sig.header.tasks:
            inherit(task, inherited, entry=True)
        inherit(sig.body, inherited, entry=False)
        _attach(sig.body, "link", links, fresh=False)
        _attach(sig.body, "link_error", errbacks, fresh=False)


def _flatten_chain(tasks: list[Signature]) -> list[Signature]:
    """The steps of nested chains in line; a group of one is its one task (Celery's
    ``maybe_unroll_group``)."""
    out: list[Signature] = []
    for task in tasks:
        while isinstance(task, group) and len(task.tasks) == 1:
            _push_down(task)
            task = task.tasks[0]
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
        elif not _empty_chain(task):  # an empty chain gives no result: dropped, as in Celery
            out.append(task)
    return out


def _distinct(tasks: list[Signature]) -> list[Signature]:
    """A signature object listed more than once (``group([sig] * 3)``) is copied for each
    repeat, so each gets an id of its own, as Celery's freeze clones members."""
    seen: set[int] = set()
    out: list[Signature] = []
    for task in tasks:
        out.append(copy_tree(task) if id(task) in seen else task)
        seen.add(id(task))
    return out


def _empty_chain(sig: Signature) -> bool:
    return isinstance(sig, chain) and all(_empty_chain(task) for task in sig.tasks)


def _empty_group(sig: Signature) -> bool:
    return isinstance(sig, group) and not sig.tasks


def freeze_tree(sig: Signature) -> None:
    """Assign every id, normalise the tree and hand options down. Idempotent."""
    if isinstance(sig, chunks):
        raise TypeError("freeze the chunks' group(), not the chunks")
    if isinstance(sig, chain):
        _push_down(sig)
        steps = _distinct(_flatten_chain(sig.tasks))
        # Empty groups are skipped, unless there is nothing else (an empty group's result).
        tasks = [task for task in steps if not _empty_group(task)] or steps[:1]
        i = 0
        while i < len(tasks) - 1:
            if isinstance(tasks[i], group):
                body = tasks.pop(i + 1)
                tasks[i] = chord(tasks[i], body, app=sig._app)
            else:
                i += 1
        sig.kwargs["tasks"] = tasks
        for task in tasks:
            freeze_tree(task)
    elif isinstance(sig, group):
        _push_down(sig)
        sig.options["task_id"] = sig.options.get("task_id") or new_id()
        sig.kwargs["tasks"] = _distinct(_flatten_group(sig.tasks))
        for task in sig.tasks:
            freeze_tree(task)
    elif isinstance(sig, chord):
        _push_down(sig)
        freeze_tree(sig.header)
        freeze_tree(sig.body)
    else:
        sig.options["task_id"] = sig.options.get("task_id") or new_id()
        for key in ("link", "link_error"):
            if key in sig.options:
                # Copies: a callback object linked to several signatures (one errback for
                # a whole workflow) must not carry the id frozen into the first of them.
                linked = [copy_tree(as_signature(s, sig._app)) for s in as_list(sig.options[key])]
                for callback in linked:
                    freeze_tree(callback)
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


def header_shape(header: group) -> list[int | None] | None:
    """How a chord's leaf results nest for its callback, as Celery nests them: per header
    task, None for one value, or the count of leaves whose results form one list (a chain
    or chord ending in a group). None when every task gives one value (the common case)."""
    shape: list[int | None] = []
    for task in header.tasks:
        if isinstance(task, group):  # a group in a group is unrolled into it
            shape.extend([None] * len(leaves(task)))
        elif isinstance(task, chain | chord) and len(leaves(task)) != 1:
            shape.append(len(leaves(task)))
        else:
            shape.append(None)
    return shape if any(size is not None for size in shape) else None


def walk(sig: Signature) -> Iterator[Signature]:
    """Every task in a node (not its link callbacks), with its chain continuations."""
    if sig.subtask_type:
        for sub in _children(sig):
            yield from walk(sub)
    else:
        yield sig
    for rest in sig.options.get("chain") or ():
        yield from walk(as_signature(rest, sig._app))


def task_ids(sig: Signature) -> list[tuple[str, str]]:
    """(id, task name) of every task in a frozen node that keeps its result."""
    return [
        (str(t.options["task_id"]), t.task) for t in walk(sig) if not t.options.get("ignore_result")
    ]


def freeze_result(sig: Signature, app: Conveyor, task_id: str | None = None) -> Any:
    """``Signature.freeze``: every id given now (in place); the result ``sig`` will have."""
    if task_id is not None:
        _set_result_id(sig, task_id)
    freeze_tree(sig)
    return result_of(sig, app, None)


def result_of(sig: Signature, app: Conveyor, parent: Any) -> Any:
    """The result handle of a frozen ``sig`` on ``app`` (``parent`` before it in a chain)."""
    if isinstance(sig, chain):
        result = parent
        for task in sig.tasks:
            result = result_of(task, app, result)
        return result
    if isinstance(sig, group):
        members = [result_of(task, app, None) for task in sig.tasks]
        return GroupResult(str(sig.options["task_id"]), members, parent=parent, app=app)
    if isinstance(sig, chord):
        header = sig.header
        head = GroupResult(
            str(header.options["task_id"]),
            [result_of(leaf, app, None) for leaf in leaves(header)],
            parent=parent,
            app=app,
        )
        return result_of(sig.body, app, head)
    kind = app.tasks.get(sig.task)
    handle: AsyncResult[Any] = AsyncResult(
        str(sig.options["task_id"]), app=app, task=kind, parent=parent
    )
    ignore = sig.options.get("ignore_result")
    if ignore is None and kind is not None:
        ignore = kind.ignore_result
    handle.ignored = bool(app.conf.task_ignore_result if ignore is None else ignore)
    return handle
