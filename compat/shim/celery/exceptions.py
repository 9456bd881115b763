"""``celery.exceptions``: each Celery exception under the same name in Conveyor, if it has one
(in the order of Celery's ``__all__``)."""

from celery._bridge import bind

_SAME_NAME = (
    "ImproperlyConfigured",
    "Ignore",
    "Reject",
    "Retry",
    "IncompleteStream",
    "NotRegistered",
    "TimeoutError",
    "MaxRetriesExceededError",
    "TaskRevokedError",
    "InvalidTaskError",
    "ChordError",
    "QueueNotFound",
    "SoftTimeLimitExceeded",
    "TimeLimitExceeded",
    "WorkerLostError",
    "Terminated",
)

bind(globals(), {name: "conveyor.exceptions" for name in _SAME_NAME})
bind(globals(), {"CeleryError": "conveyor.exceptions:ConveyorError"})
