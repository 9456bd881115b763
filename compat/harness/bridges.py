"""Stop-gaps for Conveyor gaps that would stop Celery's test modules from importing at all.

Celery's test task module uses ``@shared_task(pydantic=True)`` at module level; while
Conveyor lacks it, importing the module fails and no test of the file can run. So, only
while it is missing, the name is accepted and does nothing (the tests that rely on it
still fail), and a note says so. Each stop-gap checks first and does nothing once
Conveyor has the feature.

One more is a guard rather than a gap: Celery's chord tests first call
``app.backend.ensure_chords_allowed()`` and skip when it raises NotImplementedError (its
RPC backend cannot run chords). Conveyor runs chords on every backend, so the guard's
answer is "allowed"; without it, each chord test would fail on the missing method instead
of testing chords.
"""

from __future__ import annotations

from .notes import note

__all__ = ["apply"]

TASK_OPTIONS_USED = ("pydantic",)
"""Task options that Celery's test task modules pass at import time."""


def _accept_task_options() -> None:
    import conveyor.options
    from conveyor import shared_task
    from conveyor.exceptions import ImproperlyConfigured

    for option in TASK_OPTIONS_USED:
        try:
            shared_task(**{option: True})
        except ImproperlyConfigured as exc:
            note("task option refused", option, f"{exc}; accepted and ignored by the harness")
            conveyor.options.TASK_OPTIONS |= {option}  # what @app.task and @shared_task check


def _chords_allowed_guard() -> None:
    from conveyor.backends.base import ResultBackend

    if hasattr(ResultBackend, "ensure_chords_allowed"):
        return
    note("backend method missing", "ensure_chords_allowed", "a no-op stood in for it")

    def ensure_chords_allowed(self: ResultBackend) -> None:
        return None

    ResultBackend.ensure_chords_allowed = ensure_chords_allowed  # type: ignore[attr-defined]


def apply() -> None:
    _accept_task_options()
    _chords_allowed_guard()
