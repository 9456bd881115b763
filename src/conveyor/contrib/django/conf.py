"""The project's Conveyor app: which one it is, and how Django settings configure it.

The app is, in order: the one ``CONVEYOR_APP`` names (``"proj.conveyor:app"``); the one
the project already made (a ``proj/conveyor.py`` imported from ``proj/__init__.py``, as
with Celery); or a new one named after the project. It reads every ``CONVEYOR_*`` setting,
and gets the integration's parts: the database schedule store and Django's ``TIME_ZONE``
(unless ``CONVEYOR_BEAT_STORE`` / ``CONVEYOR_TIMEZONE`` say otherwise), the database
result backend when ``CONVEYOR_RESULT_BACKEND = "django://"``, on-commit sending and the
worker's connection hooks.
"""

from __future__ import annotations

import importlib
import os
import threading
import weakref
from typing import Any

from django.conf import settings

from ...app import Conveyor
from ...current import existing_app
from ...exceptions import ImproperlyConfigured
from ...request import Request
from ...serialization import decode_value, encode_value
from ...task import AnyTask
from . import db
from .task import install as install_django_task
from .transaction import make_gate

__all__ = ["DJANGO_BACKEND_URLS", "configure", "get_app"]

DJANGO_BACKEND_URLS = ("django://", "django-db")
"""``CONVEYOR_RESULT_BACKEND`` values that mean: results in Django's database."""
DEFAULT_STORE = "conveyor.contrib.django.store:DjangoStore"

_app: Conveyor | None = None
_lock = threading.RLock()
_configured: weakref.WeakSet[Conveyor] = weakref.WeakSet()


def get_app() -> Conveyor:
    """The project's app, configured from settings; made (or found) on first use."""
    global _app
    with _lock:
        if _app is None:
            _app = configure(_find_app())
        return _app


def _find_app() -> Conveyor:
    spec = getattr(settings, "CONVEYOR_APP", None)
    if spec:
        module_name, _, attr = str(spec).partition(":")
        if not attr:
            module_name, _, attr = module_name.rpartition(".")
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part, None)
        if not isinstance(found, Conveyor):
            raise ImproperlyConfigured(f"CONVEYOR_APP = {spec!r} is not a Conveyor app")
        return found
    existing = existing_app()  # an app the project made itself (Celery's layout)
    if existing is not None and existing.main != "default":
        return existing
    module = getattr(settings, "SETTINGS_MODULE", None) or "django"
    return Conveyor(module.rpartition(".")[0] or module)


def configure(app: Conveyor) -> Conveyor:
    """Apply the ``CONVEYOR_*`` settings and install the integration's parts (once)."""
    with _lock:
        app.config_from_object(settings, namespace="CONVEYOR")
        if app in _configured:
            return app
        if _unset("CONVEYOR_BEAT_STORE"):
            app.conf.beat_store = DEFAULT_STORE
        if _unset("CONVEYOR_TIMEZONE") and getattr(settings, "TIME_ZONE", None):
            app.conf.timezone = settings.TIME_ZONE  # cron times mean the project's local time
        if app.conf.result_backend in DJANGO_BACKEND_URLS:
            from .results import DjangoResultBackend

            # Conveyor builds backends from URLs it knows; this one is handed over built.
            app._backend = DjangoResultBackend()
        app.on_worker_child_start.append(db.close_inherited_connections)
        app.on_worker_child_start.append(db.forget_inherited_caches)
        app.on_task_start.append(_task_start)
        app.on_task_end.append(db.close_old_connections)
        if app.defer_publish is None:
            app.defer_publish = make_gate(app)
        install_django_task(app)
        _configured.add(app)
        app.set_current()
        return app


def _unset(name: str) -> bool:
    return not hasattr(settings, name) and not os.environ.get(name)


def _task_start(task: AnyTask, context: Request) -> None:
    db.close_old_connections()
    backend = task.app.backend
    remember = getattr(backend, "remember_call", None)
    if remember is not None and context.id:
        remember(context.id, _row_arguments(context.args), _row_arguments(context.kwargs))


def _row_arguments(value: Any) -> Any:
    """Arguments as JSON values for the result row (their repr when they are not JSON)."""
    try:
        return decode_value(encode_value(list(value) if isinstance(value, tuple) else value))
    except Exception:
        return repr(value)
