"""``celery.utils.time``: the time helpers that task code imports."""

from celery._bridge import bind

bind(
    globals(),
    {
        "get_exponential_backoff_interval": "conveyor.backoff",
    },
)
