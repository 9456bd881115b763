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

Custom states (``update_state(state="PROGRESS")``) rank with STARTED.
"""

from __future__ import annotations

__all__ = [
    "ALL_STATES",
    "EXCEPTION_STATES",
    "FAILURE",
    "IGNORED",
    "PENDING",
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

_ORDER = {UNKNOWN: 0, PENDING: 1, RECEIVED: 2, RETRY: 3, STARTED: 4}


def precedence(state: str) -> int:
    """Rank a state: higher means further along; ready states rank highest."""
    if state in READY_STATES:
        return 10
    return _ORDER.get(state, _ORDER[STARTED])
