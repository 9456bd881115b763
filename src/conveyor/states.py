"""Task states: each name means one thing.

========  ==================================================================
UNKNOWN   no record: the id was never sent, or its result expired
PENDING   sent, waiting in the broker (counted from the moment of sending)
RECEIVED  reserved by a worker, waiting for a free slot there
STARTED   running now
RETRY     failed or asked to retry; a new attempt is scheduled
SUCCESS   returned a value (ready)
FAILURE   raised an exception (ready)
REVOKED   revoked or expired before running (ready)
IGNORED   the task raised Ignore (ready)
REJECTED  the task raised Reject; the message was dead-lettered (ready)
========  ==================================================================

``precedence`` and ``state`` order states as Celery's do: SUCCESS ranks highest, then
FAILURE, then any custom state (``update_state(state="PROGRESS")``, IGNORED), then REVOKED,
STARTED, RECEIVED, REJECTED, RETRY, PENDING and UNKNOWN.
"""

from __future__ import annotations

__all__ = [
    "ALL_STATES",
    "EXCEPTION_STATES",
    "FAILURE",
    "IGNORED",
    "PENDING",
    "PRECEDENCE",
    "PROPAGATE_STATES",
    "READY_STATES",
    "RECEIVED",
    "REJECTED",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "UNKNOWN",
    "UNREADY_STATES",
    "precedence",
    "state",
]

UNKNOWN = "UNKNOWN"
PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
RETRY = "RETRY"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
IGNORED = "IGNORED"
REJECTED = "REJECTED"

READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED, IGNORED, REJECTED})
UNREADY_STATES = frozenset({UNKNOWN, PENDING, RECEIVED, STARTED, RETRY})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED, REJECTED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED, REJECTED})
ALL_STATES = READY_STATES | UNREADY_STATES

PRECEDENCE = [SUCCESS, FAILURE, None, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING, UNKNOWN]
"""Celery's order, highest first; None stands for any state not listed (custom states)."""
_RANK = {name: index for index, name in enumerate(PRECEDENCE)}


def precedence(name: str | None) -> int:
    """Celery's precedence index of a state: lower means higher precedence."""
    return _RANK.get(name, _RANK[None])


class state(str):
    """A state name that compares by precedence, as Celery's does:
    ``state(PENDING) < state(SUCCESS)``, ``state("PROGRESS") > state(STARTED)``."""

    def __gt__(self, other: object) -> bool:
        return precedence(self) < precedence(_name(other))

    def __ge__(self, other: object) -> bool:
        return precedence(self) <= precedence(_name(other))

    def __lt__(self, other: object) -> bool:
        return precedence(self) > precedence(_name(other))

    def __le__(self, other: object) -> bool:
        return precedence(self) >= precedence(_name(other))


def _name(value: object) -> str | None:
    return value if isinstance(value, str) or value is None else str(value)
