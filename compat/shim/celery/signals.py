"""``celery.signals``: each of Celery's signals from ``conveyor.signals``, if it has it.

The names are Celery's, in the order of its ``__all__`` (the eventlet pool's left out)."""

from celery._bridge import bind

_CELERY_SIGNALS = (
    "before_task_publish",
    "after_task_publish",
    "task_internal_error",
    "task_prerun",
    "task_postrun",
    "task_success",
    "task_received",
    "task_rejected",
    "task_unknown",
    "task_retry",
    "task_failure",
    "task_revoked",
    "celeryd_init",
    "celeryd_after_setup",
    "worker_init",
    "worker_before_create_process",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutdown",
    "worker_shutting_down",
    "setup_logging",
    "after_setup_logger",
    "after_setup_task_logger",
    "beat_init",
    "beat_embedded_init",
    "heartbeat_sent",
)

bind(globals(), {name: "conveyor.signals" for name in _CELERY_SIGNALS})
