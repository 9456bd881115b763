"""A chord's counter in the result backend: which members finished, and whether all did.

Members are counted by id in a set (``add_to_set``: atomic, and a member that runs twice
counts once); chords over 64 members count in buckets of about sqrt(size), so no set grows
past sqrt(size). Members that ``Task.add_to_chord`` added while the chord ran count in a
set of their own, against a counter of how many were added. A chord whose header was a
generator is sent member by member (``streamed``): its members count in one set, against
a size stored before the last member is sent. docs/internals.md explains
how the callback then fires exactly once; this module holds only the keys and the counting.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import msgspec

from . import states
from .keys import chord_key
from .records import ResultStore

if TYPE_CHECKING:
    from .app import Conveyor

__all__ = [
    "add_member",
    "callback_done",
    "count_member",
    "member_ids",
    "nest_results",
]

_SMALL_CHORD = 64
"""Chords up to this size count in one set; larger ones in buckets of about sqrt(size)."""


def _bucket_size(size: int) -> int:
    return size if size <= _SMALL_CHORD else math.isqrt(size - 1) + 1


def count_member(app: Conveyor, info: dict[str, Any], member: str) -> bool:
    """Count a member once; True when that makes (or finds) the chord complete, members
    added by ``Task.add_to_chord`` included."""
    chord_id = str(info["id"])
    if info.get("added"):
        app.backend.add_to_set(chord_key(chord_id, "added-done"), member, app.conf.result_expires)
        return _header_complete(app, info) and _added_complete(app, chord_id)
    return _count_header(app, info, member) and _added_complete(app, chord_id)


def _streamed_size(app: Conveyor, info: dict[str, Any]) -> int | None:
    """The size of a chord whose header was a generator: in the last member's entry, else
    stored before that member was sent (None: the generator is still being read)."""
    if info.get("size") is not None:
        return int(info["size"])
    raw = app.backend.get(chord_key(str(info["id"]), "size"))
    return int(raw) if raw else None


def _count_header(app: Conveyor, info: dict[str, Any], member: str) -> bool:
    backend, ttl = app.backend, app.conf.result_expires
    if info.get("streamed"):  # one set: the size was not known when members were sent
        counted = backend.add_to_set(chord_key(str(info["id"])), member, ttl)
        size = _streamed_size(app, info)
        return size is not None and counted >= size
    chord_id, size = str(info["id"]), int(info["size"])
    per = _bucket_size(size)
    if per >= size:
        return backend.add_to_set(chord_key(chord_id), member, ttl) >= size
    bucket = int(info.get("index") or 0) // per
    target = min(per, size - bucket * per)
    if backend.add_to_set(chord_key(chord_id, bucket), member, ttl) < target:
        return False
    return backend.add_to_set(chord_key(chord_id), str(bucket), ttl) >= -(-size // per)


def _header_complete(app: Conveyor, info: dict[str, Any]) -> bool:
    if info.get("streamed"):
        size = _streamed_size(app, info)
        counted = len(app.backend.set_members(chord_key(str(info["id"]))))
        return size is not None and counted >= size
    chord_id, size = str(info["id"]), int(info["size"])
    per = _bucket_size(size)
    counted = len(app.backend.set_members(chord_key(chord_id)))
    return counted >= (size if per >= size else -(-size // per))


def _added_complete(app: Conveyor, chord_id: str) -> bool:
    """Whether every member added by ``add_to_chord`` has finished (none added: True)."""
    raw = app.backend.get(chord_key(chord_id, "added-count"))
    added = int(raw) if raw else 0
    done = chord_key(chord_id, "added-done")
    return not added or len(app.backend.set_members(done)) >= added


def add_member(app: Conveyor, info: dict[str, Any], task_id: str) -> dict[str, Any]:
    """Make ``task_id`` one more member of the chord ``info`` describes (before it is sent,
    and while the member adding it still runs, so the chord cannot complete without it);
    the chord entry its message carries."""
    chord_id, ttl = str(info["id"]), app.conf.result_expires
    count = app.backend.incr(chord_key(chord_id, "added-count"), 1, ttl)
    app.backend.add_to_set(chord_key(chord_id, "added"), f"{count}:{task_id}", ttl)
    index = int(_streamed_size(app, info) or 0) + count - 1
    entry = {k: v for k, v in info.items() if k != "member"}
    return {**entry, "index": index, "added": count}


def member_ids(app: Conveyor, chord_id: str) -> list[str] | None:
    """The members' ids in the order their results reach the callback: the header's, then
    those added, in the order added. None when the header's record is gone."""
    from .groupresult import GroupResult

    raw = app.backend.get(GroupResult.prefix + chord_id)
    if raw is None:
        return None
    _, members = msgspec.json.decode(raw)
    added = [entry.split(":", 1) for entry in app.backend.set_members(chord_key(chord_id, "added"))]
    return [str(member[0][0]) for member in members] + [
        task_id for _, task_id in sorted(added, key=lambda entry: int(entry[0]))
    ]


def callback_done(app: Conveyor, info: dict[str, Any], root_id: str | None = None) -> bool:
    """Whether the callback fired already, or has a record (it ran, runs, or failed) of
    this workflow (``root_id``): a frozen callback that ended in another chord's workflow
    fires here too, as in Celery."""
    keys = [chord_key(str(info["id"]), "fired")]
    callback_id = info.get("callback_id")
    if callback_id:
        keys.append(app.results.key(str(callback_id)))
    found = app.backend.mget(keys)
    if found[0] is not None:
        return True
    record = ResultStore.decode(found[1]) if len(found) > 1 else None
    if record is None or record.status == states.PENDING:
        return False
    return root_id is None or (record.root_id or str(callback_id)) == root_id


def nest_results(values: list[Any], shape: list[int | None] | None) -> list[Any]:
    """The callback's argument: the members' results in order, those of one header task
    that ends in a group gathered in a list (``shape``, from ``freeze.header_shape``)."""
    if not shape:
        return values
    nested: list[Any] = []
    start = 0
    for size in shape:
        if size is None:
            nested.append(values[start])
            start += 1
        else:
            nested.append(values[start : start + size])
            start += size
    return nested + values[start:]  # members added by add_to_chord
