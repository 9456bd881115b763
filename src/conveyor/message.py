"""The message envelope: one frozen record per task run.

Encoded as msgspec JSON. Fields with their default are left out of the encoding, and
unknown fields are ignored on decoding, so a message written by a newer version still
decodes here and an old one decodes in a newer version (``v`` says which schema wrote it).

=================  ==========================================================================
field              meaning
=================  ==========================================================================
v                  schema version of the writer
id                 task id; stays the same across retries
task               registered task name
args, kwargs       arguments as JSON values (empty when ``content_type`` is pickle)
payload            pickled ``(args, kwargs)`` when ``content_type`` is "pickle"
content_type       "json" or "pickle"
queue              queue name it was routed to
priority           0-9, higher delivered first
eta                unix time before which it must not run (None: now)
expires            unix time after which it must not start; it ends REVOKED instead
retries            how many times it was retried before this attempt
root_id            id of the first task of the workflow (itself when sent alone)
parent_id          id of the task that sent it, or that precedes it in a chain
group_id           id of the group it belongs to
group_index        its position in that group (results are read back in this order)
chord              the chord callback and counter it reports to (workflows)
chain              the signatures still to run after it, last one first (workflows)
callbacks          signatures applied to its result on success (link)
errbacks           signatures applied on failure (link_error)
headers            user headers; copied into every message the workflow sends
time_limit         hard limit in seconds for this run
soft_time_limit    soft limit in seconds for this run
ignore_result      do not store state or result
idempotency_key    sends with the same key inside the dedup window enqueue once
sent_at            unix time of sending
reply              its sender may wait for the outcome: the write also hands it over
                   (a result backend's reply list, where it has them)
reply_to           with ``reply``, where to hand it: the sending thread's own list on the
                   Redis backend (one list for all it sends), or an event loop's (starting
                   with ``EVERY_OUTCOME``); None: the key's reply list
argsrepr           how logs and results show ``args`` (the sender's ``argsrepr``), if given
kwargsrepr         how logs and results show ``kwargs`` (the sender's ``kwargsrepr``)
=================  ==========================================================================
"""

from __future__ import annotations

import reprlib
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

__all__ = [
    "EVERY_OUTCOME",
    "PREVIEW",
    "SCHEMA_VERSION",
    "Message",
    "broker_key",
    "preview",
    "task_id_of",
    "to_timestamp",
]

EVERY_OUTCOME = "~"
"""How a ``reply_to`` that takes every outcome begins: an event loop's list, whose one
reader takes a failure there too (a thread's list takes successes only, and a failure goes
to the key's own reply list, which a re-send from the dead letters deletes; the loop's
reader checks a reply it kept against the stored result instead)."""

SCHEMA_VERSION = 1


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    task: str
    v: int = SCHEMA_VERSION
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    payload: bytes | None = None
    content_type: str = "json"
    queue: str = "default"
    priority: int = 0
    eta: float | None = None
    expires: float | None = None
    retries: int = 0
    root_id: str | None = None
    parent_id: str | None = None
    group_id: str | None = None
    group_index: int | None = None
    chord: dict[str, Any] | None = None
    chain: list[dict[str, Any]] = []
    callbacks: list[dict[str, Any]] = []
    errbacks: list[dict[str, Any]] = []
    headers: dict[str, Any] = {}
    time_limit: float | None = None
    soft_time_limit: float | None = None
    ignore_result: bool = False
    idempotency_key: str | None = None
    sent_at: float = 0.0
    reply: bool = False
    reply_to: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None

    def replace(self, **changes: Any) -> Message:
        return msgspec.structs.replace(self, **changes)

    def shown_args(self) -> str:
        """The positional arguments as logs and results show them: the sender's
        ``argsrepr`` (so secrets stay out), else a shortened repr."""
        return self.argsrepr if self.argsrepr is not None else _SHORT.repr(tuple(self.args))

    def shown_kwargs(self) -> str:
        """The keyword arguments as logs and results show them (``kwargsrepr``)."""
        return self.kwargsrepr if self.kwargsrepr is not None else _SHORT.repr(self.kwargs)


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxstring = short.maxother = 200
    short.maxlist = short.maxtuple = short.maxdict = 20
    return short


_SHORT = _short_repr()

PREVIEW = 200
"""Characters of an argument preview."""
_json = msgspec.json.encode


def preview(message: Message) -> tuple[str, str]:
    """Short, single-line previews of a message's args and kwargs, as the worker registry
    and inspect show them: the sender's ``argsrepr``/``kwargsrepr`` when given (so secrets
    stay out), else the arguments as the message carries them, in JSON (three times cheaper
    than ``repr``, and never a tab or a newline), cut at ``PREVIEW`` bytes."""
    if message.argsrepr is None and message.kwargsrepr is None:
        try:
            args = (
                _json(message.args)[:PREVIEW].decode("utf-8", "replace") if message.args else "[]"
            )
            kwargs = (
                _json(message.kwargs)[:PREVIEW].decode("utf-8", "replace")
                if message.kwargs
                else "{}"
            )
            return args, kwargs
        except (TypeError, ValueError):
            pass
    return _one_line(message.shown_args())[:PREVIEW], _one_line(message.shown_kwargs())[:PREVIEW]


def _one_line(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def to_timestamp(value: float | datetime | timedelta | None, now: float) -> float | None:
    """A relative number of seconds, a timedelta or a datetime, as a unix time (the form
    of ``eta`` and ``expires``)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, timedelta):
        return now + value.total_seconds()
    return now + float(value)


def broker_key(message: Message) -> str:
    """The broker's id for one attempt: a retry is a new message while the old one is held.

    Deterministic, so a retry re-sent after a crash is dropped as a duplicate.
    """
    return message.id if message.retries == 0 else f"{message.id}~{message.retries}"


def task_id_of(key: str) -> str:
    """The task id behind a broker key made by ``broker_key``."""
    return key.partition("~")[0]
