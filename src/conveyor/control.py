"""``app.control``: revoke tasks and change rate limits across the whole cluster.

Everything here is written to the coordinator, not sent to workers' memory, so it holds
for tasks not yet received, across worker restarts, and for workers started later.
"""

from __future__ import annotations

import json
import re
import signal as signals
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import states
from .exceptions import DecodeError
from .keys import rate_override_key, revoked_key, revoked_stamp_key
from .records import LEVEL_RECEIVED, TaskRecord, fence
from .serialization import decode_message
from .stamps import stamp_keys

if TYPE_CHECKING:
    from .app import Conveyor

__all__ = ["Control", "parse_rate"]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: str | float | int | None) -> float | None:
    """Tasks per second from ``"10/s"``, ``"100/m"``, ``"1000/h"`` or a number (per second)."""
    if rate is None:
        return None
    if isinstance(rate, int | float):
        value = float(rate)
    else:
        match = _RATE.match(rate)
        if match is None:
            raise ValueError(f"bad rate limit {rate!r}: write it like '10/s', '100/m' or '1000/h'")
        value = float(match.group(1)) / _PER[match.group(2) or "s"]
    if value <= 0:
        raise ValueError(f"bad rate limit {rate!r}: it must be above zero")
    return value


class Control:
    def __init__(self, app: Conveyor) -> None:
        self.app = app

    def revoke(
        self,
        task_id: str | Sequence[str],
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        reason: str = "revoked",
    ) -> None:
        """Revoke tasks: they will not start; with ``terminate``, running ones are killed.

        A running task that is not terminated sees ``self.is_aborted()`` become True.
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        signum = _signal_number(signal)
        value = json.dumps({"terminate": terminate, "signal": signum, "reason": reason})
        self.app.coordinator.put_many(
            [(revoked_key(i), value) for i in ids], float(self.app.conf.task_revoke_expires)
        )
        results = self.app.results
        for tid, record in zip(ids, results.read_many(ids), strict=True):
            if record is None or record.status in (states.PENDING, states.RECEIVED, states.RETRY):
                name = record.task if record else None
                results.write(tid, TaskRecord(status=states.REVOKED, result=reason, task=name))

    def retry_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Send dead letters (these ids, or all) back to their queues; the count sent.

        Each re-sent task's state reads PENDING again until its new attempt stores its
        own: its failure is forgotten, and a PENDING written with a fence below the new
        attempt's first delivery, so it can never hide the new outcome. A live message of
        the same id wins over its dead letter and keeps its state.
        """
        broker = self.app.broker
        letters = broker.dead_letters(1_000_000)
        if ids is not None:
            wanted = set(ids)
            letters = [letter for letter in letters if letter.id in wanted]
        live = broker.contains([letter.id for letter in letters]) if letters else set()
        resent = []
        for letter in letters:
            try:
                message = decode_message(letter.body)
            except DecodeError:
                continue
            if letter.id not in live:
                resent.append((letter, message))
        # The failure goes first, and a reply holding it that its sender never read.
        self.app.results.forget([message.id for _, message in resent])
        count = broker.requeue_dead_letters(None if ids is None else list(ids))
        for letter, message in resent:
            attempt = fence(message.retries, 0, LEVEL_RECEIVED, resends=letter.resends + 1)
            record = TaskRecord(status=states.PENDING, task=message.task, retries=message.retries)
            self.app.results.write(message.id, record, attempt)
        return count

    def revoke_by_stamped_headers(
        self,
        headers: Mapping[str, Any] | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        **kwargs: Any,
    ) -> None:
        """Revoke every task carrying one of these stamps (``{"batch": "b-7"}``, a list of
        values, or Celery's ``["batch=b-7"]``): it will not start, on any worker.

        As with ``revoke``, this holds across restarts and for workers started later
        (``destination`` is accepted and changes nothing: revocations reach every worker).
        A stamped task already running sees ``self.is_aborted()`` become True; it is not
        killed, even with ``terminate``.
        """
        if not isinstance(headers, Mapping):
            headers = dict(item.split("=", 1) for item in headers)
        signum = _signal_number(signal)
        items = []
        for name, values in headers.items():
            for value in values if isinstance(values, list | tuple | set) else [values]:
                reason = f"revoked by stamped header {name}={value!r}"
                flag = {"terminate": terminate, "signal": signum, "reason": reason}
                items.append((revoked_stamp_key(name, value), json.dumps(flag)))
        self.app.coordinator.put_many(items, float(self.app.conf.task_revoke_expires))

    def stamp_revocation(self, headers: Mapping[str, Any]) -> str | None:
        """The revocation of the first revoked stamp among a message's ``headers``, if any."""
        keys = stamp_keys(headers)
        found = self.app.coordinator.get_many(keys) if keys else []
        return next((flag for flag in found if flag is not None), None)

    def is_revoked(self, task_id: str) -> bool:
        return self.app.coordinator.get(revoked_key(task_id)) is not None

    def rate_limit(self, task_name: str, rate: str | float | None) -> None:
        """Change a task's rate limit on every worker at once (None: back to the task's own)."""
        key = rate_override_key(task_name)
        if rate is None:
            self.app.coordinator.delete(key)
            return
        parse_rate(rate)
        self.app.coordinator.put_many([(key, str(rate))], 10 * 365 * 86400.0)


def _signal_number(signal: str | int) -> int:
    if isinstance(signal, int):
        return signal
    name = signal.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signals, name))
    except AttributeError:
        raise ValueError(f"unknown signal {signal!r}") from None
