"""``celery.app.task``: the task class and its request context."""

from celery._bridge import bind

bind(globals(), {"Context": "conveyor.request", "Task": "conveyor"})
