"""Django's settings as a source of Conveyor's: read once complete, followed as they change.

``app.config_from_object("django.conf:settings", namespace="CELERY")`` usually runs while
Django's settings module is still importing (``proj/__init__.py`` imports the app, and a
test settings module starts with ``from proj.settings import *``). Reading the settings
then would see half of them, so they are read when first needed, and a read that still
comes too early is an error instead of a silent fall back to the defaults. Afterwards
``override_settings`` (and pytest-django's ``settings`` fixture, built on it) send
``setting_changed``; the app's settings follow at once.

Nothing here imports Django unless the object handed over is Django's own settings.
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable
from typing import Any

from .exceptions import ImproperlyConfigured

__all__ = ["check_ready", "is_django_settings", "watch"]


def is_django_settings(obj: object) -> bool:
    return type(obj).__module__ == "django.conf"


def check_ready(obj: object) -> None:
    """Raise if reading ``obj`` now would read a settings module that is still importing."""
    if not is_django_settings(obj):
        return
    name = os.environ.get("DJANGO_SETTINGS_MODULE")
    if getattr(obj, "configured", False):
        name = getattr(obj, "SETTINGS_MODULE", None) or name
    module = sys.modules.get(name or "")
    spec = getattr(module, "__spec__", None)
    if spec is not None and getattr(spec, "_initializing", False):
        raise ImproperlyConfigured(
            f"the app's settings were read while Django's settings module {name!r} was still "
            "importing, so they would miss what it sets after that point: read app.conf, "
            "send tasks and start brokers after the settings module has loaded, not in code "
            "that importing it runs"
        )


class _Follower:
    """A ``setting_changed`` receiver holding its Settings weakly: a dropped app does not
    stay alive for the signal's sake (its follower disconnects at the next change)."""

    def __init__(self, on_change: Callable[[str], None]) -> None:
        self.on_change = weakref.WeakMethod(on_change)

    def __call__(self, signal: Any = None, setting: str = "", **kwargs: Any) -> None:
        on_change = self.on_change()
        if on_change is None:
            signal.disconnect(self)
        else:
            on_change(setting)


_watched: weakref.WeakSet[Any] = weakref.WeakSet()


def watch(obj: object, on_change: Callable[[str], None]) -> None:
    """Call ``on_change(key)`` whenever Django's settings change ``key``; ``on_change`` is
    a bound method, and its object is watched once however often this is called."""
    owner = getattr(on_change, "__self__", None)
    if not is_django_settings(obj) or owner is None or owner in _watched:
        return
    from django.core.signals import setting_changed

    _watched.add(owner)
    setting_changed.connect(_Follower(on_change), weak=False)
