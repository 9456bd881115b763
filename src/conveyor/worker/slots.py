"""What each consumer of a child runs now, in memory shared with its supervisor.

A ``def`` task's start used to be a line written to the supervisor's pipe before the
task ran: a system call in the child and a wake-up of the supervisor for every task,
about a fifth of a quick task's cost in the child. The supervisor needs the start only
when it acts on a running task (its hard time limit, a terminate, the registry's list of
active tasks) or when the child dies (the running task's redelivery counts; the merely
reserved go back uncounted). So the child writes what it runs into its slot, a few bytes
of a shared anonymous mapping made before the fork, and the supervisor reads the slots
when it needs them (``PreforkPool._sync_slots``), and last after the child exits.

A slot is written under a sequence number (a seqlock): odd while it changes, so a reader
that sees it odd, or changed between its two reads, reads again. Its text also carries a
CRC-32, so a read that the processor's reordering of stores tore (possible on ARM, where
nothing here orders them) is read again too, never trusted. A child killed in the middle
of a write leaves the number odd: then nothing counts as running in it, as if the task
had not started. ``async def`` tasks, many at once per consumer, keep their start lines.
"""

from __future__ import annotations

import math
import mmap
import struct
import zlib
from dataclasses import dataclass

__all__ = ["SLOT_SIZE", "Running", "Slot", "SlotTable"]

SLOT_SIZE = 2048
"""Bytes per consumer; the previews are cut to fit."""
_SEQ = struct.Struct("<Q")
_TEXT_HEAD = struct.Struct("<II")
"""The text's length and CRC-32, after the sequence number."""
_TEXT_AT = _SEQ.size + _TEXT_HEAD.size
_TEXT = SLOT_SIZE - _TEXT_AT
_AIM = struct.Struct("<H")
"""The length of the terminate target's delivery id, before it (``SlotTable.aim``)."""
_AIM_SIZE = 256
_FIELDS = 10
_READS = 1000
"""Reads of a slot before it counts as left in the middle of a write."""


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
        stands = _SEQ.unpack_from(memory, offset)[0]
        self._seq = stands + (stands & 1)  # even: its next write goes on from there

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
        parent, root = lineage
        name, args, kwargs = shown
        limit = "" if deadline is None else repr(deadline)
        line = f"{delivery_id}\t{task_id}\t{parent}\t{root}\t{fence}\t{limit}\t{since!r}\t"
        line += f"{name}\t{args}\t{kwargs}"
        if line.count("\t") != _FIELDS - 1:  # a tab in a preview: keep the fields apart
            fields = (delivery_id, task_id, parent, root, str(fence), limit, repr(since))
            line = "\t".join([*fields, *(f.replace("\t", " ") for f in shown)])
        text = line.encode()
        if len(text) > _TEXT:  # the previews come last and are cut; the rest always fits
            text = text[:_TEXT].decode(errors="ignore").encode()
        self._write(text)

    def clear(self) -> None:
        self._write(b"")

    def _write(self, text: bytes) -> None:
        """Odd sequence number, the text, then the even one."""
        memory, offset = self._memory, self._offset
        self._seq += 1
        _SEQ.pack_into(memory, offset, self._seq)
        start = offset + _TEXT_AT
        memory[start : start + len(text)] = text
        _TEXT_HEAD.pack_into(memory, offset + _SEQ.size, len(text), zlib.crc32(text))
        self._seq += 1
        _SEQ.pack_into(memory, offset, self._seq)


class SlotTable:
    """The slots of one child, one per consumer thread; made by the supervisor before it
    forks the child, which inherits the mapping."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._memory = mmap.mmap(-1, SLOT_SIZE * self.count + _AIM_SIZE)
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
        for _ in range(_READS):
            seq = _SEQ.unpack_from(memory, offset)[0]
            if seq & 1:
                continue
            seen_seq, seen = self._seen[index]
            if seq == seen_seq:
                return seen
            length, crc = _TEXT_HEAD.unpack_from(memory, offset + _SEQ.size)
            start = offset + _TEXT_AT
            text = memory[start : start + min(length, _TEXT)]
            if _SEQ.unpack_from(memory, offset)[0] != seq or zlib.crc32(text) != crc:
                continue
            found = _parse(text) if text else None
            self._seen[index] = (seq, found)
            return found
        return None  # left in the middle of a write: its child died there

    def aim(self, delivery_id: str) -> None:
        """The supervisor's side, before it sends the child a terminate signal: the task it
        is meant for. The signal names no task, and by the time it lands that one may have
        ended and the consumer begun the next."""
        text = delivery_id.encode()[: _AIM_SIZE - _AIM.size]
        offset = SLOT_SIZE * self.count
        self._memory[offset + _AIM.size : offset + _AIM.size + len(text)] = text
        _AIM.pack_into(self._memory, offset, len(text))

    def aimed(self) -> str:
        """The child's side, in its signal handler: the delivery the last terminate signal
        was meant for ("" when none was aimed)."""
        offset = SLOT_SIZE * self.count
        (length,) = _AIM.unpack_from(self._memory, offset)
        start = offset + _AIM.size
        return self._memory[start : start + length].decode(errors="replace")

    def close(self) -> None:
        self._memory.close()


def _parse(text: bytes) -> Running | None:
    parts = text.decode(errors="replace").split("\t")
    parts += [""] * (_FIELDS - len(parts))
    delivery_id, task_id, parent_id, root_id, fence, deadline, since = parts[:7]
    name, args, kwargs = parts[7:_FIELDS]
    try:
        numbers = int(fence), float(deadline) if deadline else math.nan, float(since)
    except ValueError:
        return None
    if not delivery_id:
        return None
    return Running(
        delivery_id,
        task_id,
        None if math.isnan(numbers[1]) else numbers[1],
        numbers[0],
        numbers[2],
        name,
        args,
        kwargs,
        parent_id,
        root_id,
    )
