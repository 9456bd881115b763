"""What each consumer of a child runs now, in memory shared with its supervisor.

A ``def`` task's start used to be a line written to the supervisor's pipe before the
task ran: a system call in the child and a wake-up of the supervisor for every task,
about a seventh of a quick task's cost in the child. The supervisor needs the start only
when it acts on a running task (its hard time limit, a terminate, the registry's list of
active tasks) or when the child dies (the running task's redelivery counts; the merely
reserved go back uncounted). So the child writes what it runs into its slot, a few bytes
of a shared anonymous mapping made before the fork, and the supervisor reads the slots
when it needs them (``PreforkPool._sync_slots``), and last after the child exits.

A slot is written under a sequence number (a seqlock): odd while it changes, so a reader
that sees it odd, or changed between its two reads, reads again. A child killed in the
middle of a write leaves it odd: then nothing counts as running in it, as if the task had
not started. ``async def`` tasks, many at once per consumer, keep their start lines.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass

__all__ = ["SLOT_SIZE", "Running", "Slot", "SlotTable"]

SLOT_SIZE = 2048
"""Bytes per consumer; the text fields are cut to fit."""
_HEAD = struct.Struct("<QqddI")
"""Sequence number, fence, hard deadline (NaN: none), start (unix), text length."""
_SEQ = struct.Struct("<Q")
_FIELDS_HEAD = struct.Struct("<qddI")
_TEXT = SLOT_SIZE - _HEAD.size
_FIELDS = 7


@dataclass(frozen=True, slots=True)
class Running:
    """A task a consumer runs, as its slot shows it."""

    delivery_id: str
    task_id: str
    deadline: float | None
    fence: int
    since: float
    name: str
    args: str
    kwargs: str
    parent_id: str
    root_id: str


class Slot:
    """One consumer's slot: written by that consumer only."""

    def __init__(self, memory: mmap.mmap, offset: int) -> None:
        self._memory = memory
        self._offset = offset
        self._seq = 0

    def set(
        self,
        delivery_id: str,
        task_id: str,
        deadline: float | None,
        fence: int,
        since: float,
        shown: tuple[str, str, str],
        lineage: tuple[str, str],
    ) -> None:
        fields = (delivery_id, task_id, *lineage, *shown)
        text = "\t".join(f.replace("\t", " ") for f in fields).encode()
        if len(text) > _TEXT:  # the previews come last and are cut; the ids always fit
            text = text[:_TEXT].decode(errors="ignore").encode()
        self._write(fence, math.nan if deadline is None else deadline, since, text)

    def clear(self) -> None:
        self._write(0, math.nan, 0.0, b"")

    def _write(self, fence: int, deadline: float, since: float, text: bytes) -> None:
        """Odd sequence number, the fields, then the even one: a reader that saw the same
        even number before and after its read saw no write in between."""
        memory, offset = self._memory, self._offset
        self._seq += 1
        _SEQ.pack_into(memory, offset, self._seq)
        if text:
            memory[offset + SLOT_SIZE - len(text) : offset + SLOT_SIZE] = text
        _FIELDS_HEAD.pack_into(memory, offset + _SEQ.size, fence, deadline, since, len(text))
        self._seq += 1
        _SEQ.pack_into(memory, offset, self._seq)


class SlotTable:
    """The slots of one child, one per consumer thread; made by the supervisor before it
    forks the child, which inherits the mapping."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._memory = mmap.mmap(-1, SLOT_SIZE * self.count)
        self._seen: list[tuple[int, Running | None]] = [(0, None)] * self.count

    def slot(self, index: int) -> Slot:
        return Slot(self._memory, index * SLOT_SIZE)

    def read(self) -> list[Running]:
        """What every consumer of the child runs now (the supervisor's side)."""
        running: list[Running] = []
        for index in range(self.count):
            found = self._read(index)
            if found is not None:
                running.append(found)
        return running

    def _read(self, index: int) -> Running | None:
        offset = index * SLOT_SIZE
        memory = self._memory
        for _ in range(100):
            seq, fence, deadline, since, length = _HEAD.unpack_from(memory, offset)
            if seq & 1:
                continue
            seen_seq, seen = self._seen[index]
            if seq == seen_seq:
                return seen
            text = memory[offset + SLOT_SIZE - length : offset + SLOT_SIZE] if length else b""
            if _SEQ.unpack_from(memory, offset)[0] != seq:
                continue
            found = _parse(text, fence, deadline, since) if length else None
            self._seen[index] = (seq, found)
            return found
        return None  # left in the middle of a write: its child died there

    def close(self) -> None:
        self._memory.close()


def _parse(text: bytes, fence: int, deadline: float, since: float) -> Running | None:
    parts = text.decode(errors="replace").split("\t")
    if len(parts) < _FIELDS:
        parts += [""] * (_FIELDS - len(parts))
    delivery_id, task_id, parent_id, root_id, name, args, kwargs = parts[:_FIELDS]
    if not delivery_id:
        return None
    return Running(
        delivery_id,
        task_id,
        None if math.isnan(deadline) else deadline,
        fence,
        since,
        name,
        args,
        kwargs,
        parent_id,
        root_id,
    )
