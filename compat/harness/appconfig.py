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

__all__ = ["make_app"]


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
    return app
