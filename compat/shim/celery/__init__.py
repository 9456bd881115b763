"""``celery``, mapped to Conveyor: what Celery's test suite imports from the top level."""

from celery._bridge import bind

bind(
    globals(),
    {
        "Celery": "conveyor:Conveyor",
        "Signature": "conveyor",
        "Task": "conveyor",
        "chain": "conveyor",
        "chord": "conveyor",
        "chunks": "conveyor",
        "current_app": "conveyor",
        "group": "conveyor",
        "maybe_signature": "conveyor",
        "shared_task": "conveyor",
        "signature": "conveyor",
        "uuid": ("conveyor.utils", "conveyor"),
        "xmap": "conveyor",
        "xstarmap": "conveyor",
    },
)

__version__ = "5.5.3"
"""The Celery release whose tests this shim serves (tests read it)."""
