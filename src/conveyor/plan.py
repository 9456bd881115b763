"""Sending a frozen workflow: the messages and group records of one send.

``send`` is the client side of every workflow ``apply_async``: it freezes a copy of the
signature (``conveyor.freeze``) and applies it with a ``Plan``. Applying turns the nodes
that can run now into messages; what runs later travels in those messages (the rest of a
chain, link callbacks, a chord member's ``chord`` entry), never in a coordinator. The
worker continues a workflow (``conveyor.workflow``) with a ``Plan`` of its own, so the
same code builds the messages in the client and in the worker. Kept apart from freezing
because it is the one place that writes: messages to the broker, records to the backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from . import states
from .canvas import chain, chord, chunks, group
from .freeze import entry_id, freeze_tree, header_shape, inherit, leaves, result_of
from .groupresult import GroupResult
from .keys import chord_key
from .message import Message
from .request import current_request, note_child
from .signatures import (
    NOT_INHERITED,
    WORKFLOW_OPTIONS,
    Signature,
    as_list,
    as_signature,
    copy_tree,
)
from .stamps import without_stamps

if TYPE_CHECKING:
    from .app import Conveyor
    from .records import TaskRecord
    from .task import AnyTask

__all__ = ["ApplyContext", "Plan", "send"]


@dataclass
class ApplyContext:
    """Where a node is applied: its parent's result, ids, headers and what follows it."""

    prev: tuple[Any, ...] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    root_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    rest: list[Signature] = field(default_factory=list)
    """The chain continuation after this node, last step first (as in ``Message.chain``)."""

    def but(self, **changes: Any) -> ApplyContext:
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
        self.items: list[tuple[Message, AnyTask | None]] = []
        self.envelopes: list[Any] = []
        self.records: list[tuple[str, bytes]] = []
        self.errors: list[tuple[Signature, ApplyContext, BaseException]] = []

    # -- building

    def apply(self, sig: Signature, ctx: ApplyContext) -> None:
        """Add the messages that start the frozen node ``sig`` in ``ctx``."""
        if isinstance(sig, chunks):
            sig = sig.group()
            freeze_tree(sig)
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

    def _group(self, sig: group, ctx: ApplyContext) -> None:
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
        self._save_group(gid, [result_of(task, self.app, None) for task in tasks])
        for task in tasks:
            self.apply(task, ctx.but(rest=[]))

    def _chord(self, sig: chord, ctx: ApplyContext) -> None:
        header, body = sig.header, sig.body
        gid = str(header.options["task_id"])
        if ctx.rest:
            body.options["chain"] = [*ctx.rest, *as_list(body.options.get("chain"))]
        members = leaves(header)
        callback_id = entry_id(body)
        shape = header_shape(header)
        # A frozen signature repeated in the header is one message (ids are unique in the
        # broker): it runs once, counts once, and its result fills each of its places.
        distinct: dict[str, int] = {}
        for leaf in members:
            distinct.setdefault(str(leaf.options["task_id"]), len(distinct))
        for index, leaf in enumerate(members):
            leaf.options["group_id"] = gid
            leaf.options["group_index"] = index
            leaf.options["ignore_result"] = False
            leaf.options["chord"] = {
                "id": gid,
                "size": len(distinct),
                "index": distinct[str(leaf.options["task_id"])],
                "callback": body,
                "callback_id": callback_id,
            }
            if shape is not None:
                leaf.options["chord"]["shape"] = shape
        self._save_tuple(gid, [[[str(leaf.options["task_id"]), None], None] for leaf in members])
        if not members:
            rest = [as_signature(s, self.app) for s in as_list(body.options.pop("chain", None))]
            self.apply(body, ctx.but(prev=([],), kwargs={}, rest=rest))
            return
        for task in header.tasks:
            self.apply(task, ctx.but(rest=[]))

    def _save_group(self, gid: str, results: list[Any]) -> None:
        self._save_tuple(gid, [result.as_tuple() for result in results])

    def _save_tuple(self, gid: str, members: list[Any]) -> None:
        """Store a group's membership as ``GroupResult.save`` would (``as_tuple`` form)."""
        self.records.append((GroupResult.prefix + gid, msgspec.json.encode([[gid, None], members])))

    def _task(self, sig: Signature, ctx: ApplyContext) -> None:
        app = self.app
        try:
            task = app.tasks.get(sig.task)
            if sig.immutable:
                args, kwargs = sig.args, dict(sig.kwargs)
            else:
                args = (*(ctx.prev or ()), *sig.args)
                kwargs = {**ctx.kwargs, **sig.kwargs}
            options = {k: v for k, v in sig.options.items() if k not in WORKFLOW_OPTIONS}
            options["task_id"] = sig.options["task_id"]
            for key in ("group_id", "group_index"):
                if sig.options.get(key) is not None:
                    options[key] = sig.options[key]
            inherited = without_stamps(ctx.headers)  # a task's stamps are its own
            options["headers"] = {**inherited, **(sig.options.get("headers") or {})}
            if ctx.root_id:
                options["root_id"] = ctx.root_id
            if ctx.parent_id:
                options["parent_id"] = ctx.parent_id
            message = app.build_message(task, args, kwargs, options, name=sig.task)
            message = message.replace(
                chain=list(ctx.rest),
                callbacks=as_list(sig.options.get("link")),
                errbacks=as_list(sig.options.get("link_error")),
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
        # A task revoked before it was sent is sent anyway: the worker refuses it, and
        # its REVOKED outcome then flows on to what follows it, as any failure does.
        sent = zip(self.items, self.envelopes, found, strict=True)
        envelopes = [
            envelope
            for (message, _), envelope, record in sent
            if record is None or record.status == states.REVOKED or _other_run(record, message)
        ]
        if envelopes:
            app.publish_envelopes(envelopes)


def _other_run(record: TaskRecord, message: Message) -> bool:
    """Whether a continuation's stored record is the outcome of another workflow that used
    the same id (a frozen signature sent in two workflows, as Celery allows): its record
    names another root. A duplicate of this workflow's own continuation (its task before
    it ran twice) has this root, and a record that names none (not ended yet, or written
    before records kept roots) is taken as this workflow's: both are still left out."""
    return record.root_id is not None and record.root_id != message.root_id


def _stream_chord(
    app: Conveyor,
    sig: chord,
    first: Signature,
    items: Iterator[Signature],
    inherited: Mapping[str, Any],
    ctx: ApplyContext,
) -> None:
    """Send a chord whose header is a generator as Celery does: each header task as the
    generator yields it, so the first run while the rest are made.

    Its members count towards a size not known yet (``streamed``); a look-ahead of one
    item finds the last, and the size and the header's record are stored before that
    last member is sent, which is therefore before any member can complete the chord. A
    header task that is a chain or group adds its leaves as members, their results
    flat in the callback's list."""
    header, body = sig.header, sig.body
    gid = str(header.options["task_id"])
    callback_id = entry_id(body)
    members: list[Signature] = []
    tasks: list[Signature] = []
    pending: Signature | None = first
    while pending is not None:
        following = next(items, None)
        task = pending
        inherit(task, inherited, entry=True)
        freeze_tree(task)
        tasks.append(task)
        plan = Plan(app, fresh=True)
        ends = following is None
        group_index = len(tasks) - 1
        for leaf in leaves(task):
            leaf.options["group_id"] = gid
            leaf.options["group_index"] = group_index
            leaf.options["ignore_result"] = False
            leaf.options["chord"] = {
                "id": gid,
                "size": None,
                "index": len(members),
                "callback": body,
                "callback_id": callback_id,
                "streamed": True,
            }
            members.append(leaf)
        if ends:
            members[-1].options["chord"]["size"] = len(members)
            plan.records.append((chord_key(gid, "size"), str(len(members)).encode()))
            plan._save_tuple(gid, [[[str(m.options["task_id"]), None], None] for m in members])
        plan.apply(task, ctx.but(rest=[]))
        plan.flush()  # now: this member may run while the generator makes the next
        pending = following
    header.kwargs["tasks"] = tasks


def send(
    sig: Signature,
    app: Conveyor,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: Mapping[str, Any],
) -> Any:
    """Freeze a copy of ``sig`` and send it: the client side of every ``apply_async``. Sent
    from a running task, the workflow's first step counts among the task's children."""
    node = copy_tree(sig)
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
    stream = node.header_stream() if isinstance(node, chord) else None
    inherited = {k: v for k, v in node.options.items() if k not in NOT_INHERITED}
    freeze_tree(node)
    if isinstance(node, chain) and not node.tasks:
        return None  # an empty chain sends nothing, as in Celery
    request = current_request()
    ctx = ApplyContext(
        prev=prev,
        kwargs=kwargs if node.subtask_type else {},
        parent_id=parent_id or (request.id if request else None),
        root_id=root_id or (request.root_id if request else None) or entry_id(node),
        headers={},
    )
    first = next(stream, None) if stream is not None else None
    if isinstance(node, chord) and stream is not None and first is not None:
        _stream_chord(app, node, first, stream, inherited, ctx)
    else:  # (a generator header that yields nothing is an empty header)
        plan = Plan(app, fresh=True)
        plan.apply(node, ctx)
        plan.flush()
    result = result_of(node, app, None)
    if isinstance(result, GroupResult) and len(result) == 1:
        only = result.results[0]
        if isinstance(only, GroupResult):
            result = only  # a group of one chain that ends in a group: that group, as in Celery
    if request is not None:
        note_child(_first_sent(result))
    return result


def _first_sent(result: Any) -> Any:
    """The result of a workflow's first step, the one a send publishes (the later steps are
    sent by the tasks before them): what Celery adds to the sending task's children."""
    while getattr(result, "known_parent", None) is not None:
        result = result.known_parent
    return result
