"""What happens after a task ends: continue its chain, count it toward its chord, run its
link and link_error callbacks.

The executor calls ``after_outcome`` once a task's outcome is stored and before its
message is acked, and ``resume`` when a redelivered message turns out to have stored its
outcome already. Both are idempotent, so the second call finishes what the first left
half done. Every continuation travels in the message of the task before it; a chord's
shared state lives in the result backend (``conveyor.chordcount``). Why a chord's callback
fires exactly once, crash window by crash window: docs/internals.md, "Continuing a
workflow".
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from . import states
from .canvas import ACCUMULATE, FORWARD, chain, chord, group
from .chordcount import add_member, callback_done, count_member, member_ids, nest_results
from .exceptions import BrokerError, ChordError, Ignore, ImproperlyConfigured, TaskRevokedError
from .freeze import entry_id, freeze_tree, leaves, result_id, result_of, walk
from .keys import chord_key
from .plan import ApplyContext, Plan
from .records import ErrorRecord, TaskRecord
from .request import Request
from .runtime_hooks import runtime
from .signatures import Signature, as_list, as_signature
from .stamps import without_stamps

if TYPE_CHECKING:
    from .app import Conveyor
    from .message import Message
    from .task import AnyTask

__all__ = [
    "add_to_chord",
    "after_outcome",
    "continues",
    "handed_on",
    "replace",
    "resume",
    "sent_on_success",
]

logger = logging.getLogger("conveyor.workflow")

_FAILED_STATES = frozenset({states.FAILURE, states.REVOKED, states.REJECTED})

_replaced: set[str] = set()
_replaced_lock = threading.Lock()


# -- executor hooks -----------------------------------------------------------------------


def handed_on(message: Message, record: TaskRecord) -> bool:
    """True (once) for the IGNORED outcome of a task that called ``replace()``: it stores
    nothing and continues nothing; its replacement does both."""
    if record.status != states.IGNORED:
        return False
    with _replaced_lock:
        if message.id in _replaced:
            _replaced.discard(message.id)
            return True
    return False


def continues(message: Message) -> bool:
    """Whether something comes after this message's task (chain, links, chord)."""
    return bool(message.chain or message.callbacks or message.errbacks or message.chord)


def after_outcome(app: Conveyor, message: Message, record: TaskRecord) -> None:
    """A task's outcome is stored: do what its message says comes next."""
    if not continues(message):
        return
    try:
        if record.status == states.SUCCESS:
            _after_success(app, message, record)
        elif record.status in _FAILED_STATES:
            _after_failure(app, message, record)
        elif record.status == states.IGNORED:
            _after_failure(app, message, record, ignored=True)
    except (BrokerError, OSError):
        raise  # the store is unreachable: let the message be redelivered and try again
    except Exception:
        logger.exception("%s[%s]: workflow continuation failed", message.task, message.id)


def sent_on_success(app: Conveyor, message: Message) -> list[Any]:
    """What a task's success sends next, its link callbacks then its chain's next step, as
    results in ``as_tuple()`` form: Celery counts them among the task's children (it sends
    them before storing the result; here ``after_outcome`` sends them after, with the ids
    they were given when the workflow was sent)."""
    found = []
    try:
        following = [c for c in _sigs(message.callbacks, app) if c.task != FORWARD]
        if message.chain:
            following.append(as_signature(message.chain[-1], app))
        for sig in following:
            result = result_of(sig, app, None)
            while getattr(result, "known_parent", None) is not None:  # a chord: its header
                result = result.known_parent
            found.append(result.as_tuple())
    except Exception:  # a continuation that cannot be read fails later, where it is sent
        logger.debug("%s[%s]: its continuations are not listed", message.task, message.id)
    return found


def resume(app: Conveyor, message: Message) -> None:
    """A redelivered message whose outcome is stored: finish its continuation."""
    if not continues(message):
        return
    record = app.results.read(message.id)
    if record is not None and record.status in states.READY_STATES:
        after_outcome(app, message, record)


# -- success ------------------------------------------------------------------------------


def _after_success(app: Conveyor, message: Message, record: TaskRecord) -> None:
    ctx = ApplyContext(
        prev=(record.result,),
        parent_id=message.id,
        root_id=message.root_id or message.id,
        headers=dict(message.headers),
    )
    plan = Plan(app, fresh=False)
    for callback in _sigs(message.callbacks, app):
        if callback.task == FORWARD:
            _forward(app, callback, record)
        else:
            plan.apply(callback, ctx)
    if message.chain:
        rest = _sigs(message.chain, app)
        plan.apply(rest.pop(), ctx.but(rest=rest))
    fired: str | None = None
    info = message.chord
    if (
        info is not None
        and count_member(app, info, _member(message))
        and _prepare_callback(app, plan, info, message)
    ):
        fired = str(info["id"])
    plan.flush()
    if fired is not None:
        app.backend.set(chord_key(fired, "fired"), b"1", app.conf.result_expires)
    _fail_unsendable(app, plan)


def _member(message: Message) -> str:
    chord_info = message.chord or {}
    return str(chord_info.get("member") or message.id)


def _prepare_callback(app: Conveyor, plan: Plan, info: dict[str, Any], message: Message) -> bool:
    """Add the chord's callback to ``plan`` if it is due and not fired yet."""
    chord_id = str(info["id"])
    if callback_done(app, info, message.root_id or message.id):
        return False
    ids = member_ids(app, chord_id)
    if ids is None:
        logger.error("chord %s: its header record is gone (expired?); cannot fire", chord_id)
        return False
    records = app.results.read_many(ids)
    for task_id, member in zip(ids, records, strict=True):
        if member is None or member.status not in states.READY_STATES:
            return False  # a member is running again; it fires the chord when it ends
        if member.status != states.SUCCESS:
            _chord_failed(app, info, task_id, member.task, member, root_id=_root(message))
            return False
    body = as_signature(copy.deepcopy(info["callback"]), app)
    rest = _sigs(as_list(body.options.pop("chain", None)), app)
    ctx = ApplyContext(
        prev=(nest_results([m.result for m in records if m is not None], info.get("shape")),),
        parent_id=message.id,
        root_id=message.root_id or message.id,
        headers=dict(message.headers),
        rest=rest,
    )
    plan.apply(body, ctx)
    return True


# -- failure ------------------------------------------------------------------------------


def _after_failure(
    app: Conveyor, message: Message, record: TaskRecord, ignored: bool = False
) -> None:
    errbacks = []
    for errback in _sigs(message.errbacks, app):
        if errback.task == FORWARD:
            _forward(app, errback, record)
        else:
            errbacks.append(errback)
    origin = (message.id, message.task)
    steps = _sigs(message.chain, app)[::-1]  # in the order they would have run
    _fail_nodes(app, steps, record, origin, (message.id, _root(message)))
    if not ignored:
        _run_errbacks(app, errbacks, _request(message), _exception(record), record.traceback)
    if message.chord is not None:
        _chord_failed(
            app, message.chord, message.id, message.task, record, _member(message), _root(message)
        )


def _root(message: Message) -> str:
    return message.root_id or message.id


def _chord_failed(
    app: Conveyor,
    info: dict[str, Any],
    failed_id: str,
    failed_task: str | None,
    record: TaskRecord,
    member: str | None = None,
    root_id: str | None = None,
) -> None:
    """A member failed: fail the chord's callback, once. ``root_id``: the workflow's."""
    chord_id = str(info["id"])
    member = member or failed_id
    if callback_done(app, info, root_id):
        return
    failed_key = chord_key(chord_id, "failed")
    ttl = app.conf.result_expires
    again = member in app.backend.set_members(failed_key)  # this failure, redelivered
    if not again and app.backend.add_to_set(failed_key, member, ttl) != 1:
        return  # another member failed first and fails the chord
    what = f"{failed_task}[{failed_id}]" if failed_task else failed_id
    if record.status == states.IGNORED:
        reason = "was ignored"
    elif record.status == states.SUCCESS:
        reason = "succeeded but its result could not be read"
    else:
        exc = _exception(record)
        reason = f"raised {type(exc).__name__}: {exc}"
    error = ChordError(f"chord {chord_id}: member {what} {reason}")
    body = as_signature(copy.deepcopy(info["callback"]), app)
    rest = _sigs(as_list(body.options.pop("chain", None)), app)
    failure = _failure_record(error, body.task)
    origin = (str(info.get("callback_id")), body.task)
    _fail_nodes(app, [body, *rest[::-1]], failure, origin, (failed_id, root_id))
    request = Request(
        id=entry_id(body),
        task=body.task,
        root_id=root_id,
        parent_id=failed_id,
        group_id=chord_id,
        called_directly=False,
    )
    _run_errbacks(app, _errbacks_of(body), request, error, None)


def _fail_nodes(
    app: Conveyor,
    nodes: Sequence[Signature],
    record: TaskRecord,
    origin: tuple[str, str | None],
    lineage: tuple[str | None, str | None],
) -> None:
    """Nodes that will never run now, in the order they would have run: give each task in
    them a copy of the failing record (unless it has one), and pass the failure on to chords
    they belong to.

    ``lineage``: the parent of the first node (each later node's is the node before it,
    as when a chain runs) and the workflow's first task, which their records keep; what
    was the failed task's own (its arguments, children, runtime) is not copied."""
    tasks = []
    parent, root_id = lineage
    for node in nodes:
        for task in walk(node):
            tasks.append(task)
            copied = _copy(
                record,
                task=task.task,
                parent_id=parent,
                root_id=root_id,
                children=[],
                args=None,
                kwargs=None,
                argsrepr=None,
                kwargsrepr=None,
                runtime=None,
            )
            app.results.write(str(task.options["task_id"]), copied, 0)
        parent = result_id(node)
    for task in tasks:
        for errback in _sigs(as_list(task.options.get("link_error")), app):
            if errback.task == FORWARD:
                _forward(app, errback, record)
    for task in tasks:
        info = task.options.get("chord")
        if info is not None:
            member = str(info.get("member") or task.options["task_id"])
            _chord_failed(app, info, origin[0], origin[1], record, member, root_id)


def _errbacks_of(sig: Signature) -> list[Signature]:
    """The errbacks that run when a node fails as a whole (its first task's)."""
    if isinstance(sig, chain | group):
        return _errbacks_of(sig.tasks[0]) if sig.tasks else []
    if isinstance(sig, chord):
        return _errbacks_of(sig.body)
    errbacks = [as_signature(e, sig._app) for e in as_list(sig.options.get("link_error"))]
    return [e for e in errbacks if e.task != FORWARD]


def _run_errbacks(
    app: Conveyor,
    errbacks: Sequence[Signature],
    request: Request,
    exc: BaseException,
    traceback: str | None,
) -> None:
    """Celery's two kinds: a task taking ``(request, exc, traceback)`` is called here and
    now; any other is sent as a task with the failed task's id as its first argument."""
    if not errbacks:
        return
    plan = Plan(app, fresh=False)
    failed_id = str(request.id)
    ctx = ApplyContext(
        prev=(failed_id,),
        parent_id=failed_id,
        root_id=request.root_id or failed_id,
        headers=dict(request.headers or {}),
    )
    for errback in errbacks:
        task = app.tasks.get(errback.task)
        if task is not None and _takes_request(task, errback):
            args = errback.args if errback.immutable else (request, exc, traceback, *errback.args)
            try:
                task(*args, **errback.kwargs)
            except Exception:
                logger.exception("errback %s for %s raised", errback.task, failed_id)
        else:
            plan.apply(errback, ctx)
    plan.flush()
    for sig, _, error in plan.errors:
        logger.error("errback %s for %s could not be sent: %s", sig.task, failed_id, error)


def _takes_request(task: AnyTask, errback: Signature) -> bool:
    """New style when, after the errback's own arguments, it still needs two or more
    positional arguments (``request, exc, traceback``), or takes ``*args``."""
    spec = task.spec
    if spec.var_positional is not None:
        return True
    required = [
        p.name
        for p in spec.signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is p.empty
        and p.name not in errback.kwargs
    ]
    return len(required) - len(errback.args) > 1


def _fail_unsendable(app: Conveyor, plan: Plan) -> None:
    """Continuations that could not even be built (bad arguments, unencodable values)."""
    for sig, ctx, exc in plan.errors:
        logger.error("%s could not be sent: %s", sig.task, exc)
        failed = entry_id(sig) or ""
        record = _failure_record(exc, sig.task)
        nodes = [sig, *ctx.rest[::-1]]
        _fail_nodes(app, nodes, record, (failed, sig.task), (ctx.parent_id, ctx.root_id))
        request = Request(id=failed, task=sig.task, root_id=ctx.root_id, parent_id=ctx.parent_id)
        _run_errbacks(app, _errbacks_of(sig), request, exc, record.traceback)


# -- Task.replace -------------------------------------------------------------------------


def replace(task: AnyTask, sig: Any) -> Any:
    """Swap the rest of the running task's work for ``sig`` and end the task.

    The replacement inherits the task's chain continuation, chord membership, group
    membership and link callbacks; whatever it finally returns (or raises) is stored under
    the replaced task's id too, so results already handed out keep working. A group
    becomes a chord that collects its results into one list, as in Celery.
    """
    app = task.app
    request = task.request
    new = copy.deepcopy(as_signature(sig, app))
    new._app = app
    if isinstance(new, chain) and not new.tasks:  # nothing would ever give the result
        raise ImproperlyConfigured("Cannot replace with an empty chain: give it a task")
    message: Message | None = request.message
    if request.called_directly or message is None:
        if request.is_eager:
            return new.apply().get()
        raise RuntimeError("replace() works only inside a task run by a worker (or eagerly)")
    collect = Signature(ACCUMULATE, kwargs={"index": 0}, app=app)
    if isinstance(new, group):
        new = chord(new, collect, app=app)
    freeze_tree(new)
    if len(leaves(new)) != 1:
        new = chain(new, collect, app=app)
    lineage = {"parent_id": message.parent_id, "root_id": message.root_id}
    forward = Signature(FORWARD, kwargs={"task_id": message.id, **lineage}, app=app)
    new.options["link"] = [
        *as_list(new.options.get("link")),
        forward,
        *_sigs(message.callbacks, app),
    ]
    new.options["link_error"] = [
        *as_list(new.options.get("link_error")),
        copy.deepcopy(forward),
        *_sigs(message.errbacks, app),
    ]
    freeze_tree(new)
    leaf = leaves(new)[0]
    if message.chord is not None:
        leaf.options["chord"] = {**message.chord, "member": _member(message)}
    if message.group_id is not None:
        leaf.options["group_id"] = message.group_id
        leaf.options["group_index"] = message.group_index
    ctx = ApplyContext(
        parent_id=message.id,
        root_id=message.root_id or message.id,
        headers=dict(message.headers),
        rest=_sigs(message.chain, app),
    )
    plan = Plan(app, fresh=True)
    plan.apply(new, ctx)
    plan.flush()
    with _replaced_lock:
        _replaced.add(message.id)
    raise Ignore(f"replaced by {task.name} -> {new!r}")


# -- Task.add_to_chord --------------------------------------------------------------------


def add_to_chord(task: AnyTask, sig: Any, lazy: bool = False) -> Any:
    """Make ``sig`` one more member of the chord the running task belongs to: the callback
    waits for it too and gets its result after the header's, in the order added. Sends it
    (its result) unless ``lazy``, which returns the prepared signature to send later."""
    message: Message | None = task.request.message
    info = message.chord if message is not None else None
    if message is None or info is None:
        raise ValueError(
            f"{task.name}: the current task is not a member of any chord; add_to_chord "
            "works in a chord's header task run by a worker"
        )
    app = task.app
    node = as_signature(copy.deepcopy(sig) if lazy else sig, app)
    node._app = node._app or app
    freeze_tree(node)
    members = leaves(node)
    if len(members) != 1:
        raise ValueError("add_to_chord takes a signature with one result (a task or a chain)")
    leaf = members[0]
    entry = add_member(app, info, str(leaf.options["task_id"]))
    leaf.options.update(group_id=entry["id"], group_index=entry["index"], chord=entry)
    if lazy:
        return node
    ctx = ApplyContext(
        parent_id=message.id,
        root_id=message.root_id or message.id,
        headers=without_stamps(message.headers),
    )
    plan = Plan(app, fresh=True)
    plan.apply(node, ctx)
    plan.flush()
    return result_of(node, app, None)


# -- helpers ------------------------------------------------------------------------------


def _sigs(items: Iterable[Any], app: Conveyor) -> list[Signature]:
    return [as_signature(item, app) for item in items]


def _forward(app: Conveyor, marker: Signature, record: TaskRecord) -> None:
    """Store a replacement's outcome under the id of the task it replaced, with that
    task's lineage (its parent and root)."""
    target = str(marker.kwargs["task_id"])
    root = marker.kwargs.get("root_id")
    lineage = {"parent_id": marker.kwargs.get("parent_id"), "root_id": root}
    if root == target:
        lineage["root_id"] = None  # as a record keeps it: left out when it is the task
    app.results.write(target, _copy(record, **lineage), None)


def _copy(record: TaskRecord, **changes: Any) -> TaskRecord:
    copied: TaskRecord = msgspec.structs.replace(record, **changes)
    return copied


def _exception(record: TaskRecord) -> BaseException:
    if record.exception is not None:
        return record.exception.rebuild(record.traceback)
    if record.status in (states.REVOKED, states.REJECTED):
        return TaskRevokedError(f"task {record.task} was {record.status.lower()}: {record.result}")
    return ChordError(f"task {record.task} ended {record.status}")


def _failure_record(exc: BaseException, task: str | None) -> TaskRecord:
    return TaskRecord(
        status=states.FAILURE,
        result=f"{type(exc).__name__}: {exc}",
        exception=ErrorRecord.from_exception(exc),
        task=task,
    )


def _request(message: Message) -> Request:
    return Request(
        id=message.id,
        task=message.task,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        retries=message.retries,
        root_id=message.root_id,
        parent_id=message.parent_id,
        group_id=message.group_id,
        group_index=message.group_index,
        headers=dict(message.headers),
        called_directly=False,
    )


runtime.replace = replace
runtime.add_to_chord = add_to_chord
