"""``celery._state``: the current app; the rest is Celery's internal bookkeeping."""

from celery._bridge import bind

bind(
    globals(),
    {
        "current_app": "conveyor",
        "get_current_app": "conveyor:current_app",
        "_task_stack": None,
        "task_join_will_block": None,
        "orig_task_join_will_block": None,
    },
)
