"""``celery.utils.log``: loggers."""

from celery._bridge import bind

bind(globals(), {"get_logger": "conveyor.log", "get_task_logger": "conveyor.log"})
