"""Build a Conveyor app the way Celery's test fixtures build a Celery app.

Celery's fixtures pass a whole configuration dict (``celery_config``); Conveyor raises on a
setting it does not know, which would stop every test at set-up. So each setting is applied
on its own, and one that is refused is noted (``harness.notes``) and left out: the run
measures everything else, and the table's notes say which settings need handling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .notes import note

__all__ = ["make_app", "register_task"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def make_app(main: str, config: Mapping[str, Any], parameters: Mapping[str, Any]) -> Any:
    from celery import Celery  # the shim's name for Conveyor

    app = Celery(main, set_as_current=False, **parameters)
    for name, value in config.items():
        try:
            app.conf.update({name: value})
        except Exception as exc:
            note("setting refused", name, _first_line(exc))
    if not hasattr(app, "set_default"):
        # Celery's integration conftest calls app.set_default() before every test.
        note("app method missing", "set_default", "stood in for by set_current")
        app.set_default = app.set_current
    return app


def register_task(app: Any, task: Any) -> Any:
    """``app.register_task(task)`` as Celery's fixtures call it: with a class, which Celery
    instantiates. If Conveyor refuses the class, the instance is registered and noted."""
    try:
        return app.register_task(task)
    except Exception as exc:
        if not isinstance(task, type):
            raise
        note("register_task refused a class", task.__qualname__, _first_line(exc))
        return app.register_task(task())
