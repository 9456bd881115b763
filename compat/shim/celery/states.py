"""``celery.states``: state names, their groups, precedence and the comparable ``state``.

The names of Celery's ``__all__``, in its order, then the two other names it defines."""

from celery._bridge import bind

_CELERY_STATES = (
    "PENDING",
    "RECEIVED",
    "STARTED",
    "SUCCESS",
    "FAILURE",
    "REVOKED",
    "RETRY",
    "IGNORED",
    "READY_STATES",
    "UNREADY_STATES",
    "EXCEPTION_STATES",
    "PROPAGATE_STATES",
    "precedence",
    "state",
    "ALL_STATES",
    "REJECTED",
)

bind(globals(), {name: "conveyor.states" for name in _CELERY_STATES})
