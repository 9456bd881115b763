"""What ``conveyor worker -A proj`` (and every CLI command) needs from a Django project.

``-A`` naming a project package with no Conveyor app in it, or DJANGO_SETTINGS_MODULE
set and no ``-A``: set Django up and use the app the integration configured. An app found
by ``-A`` in a Django project (Celery's ``proj/conveyor.py`` layout) gets Django set up
too, so its tasks can use the ORM. Nothing here imports Django unless it is installed and
a project is in sight.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING

from ...exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from ...app import Conveyor

__all__ = ["project_app"]

APP_NAME = "conveyor.contrib.django"


def _exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # the parent is a plain module, or not importable
        return False


def project_app(module_name: str | None, found: Conveyor | None = None) -> Conveyor | None:
    """Set Django up when there is a project and return the integration's app (or
    ``found``, when the caller already has one); None when this is not a Django project."""
    if not _exists("django"):
        return None
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        if found is not None or not module_name or not _exists(f"{module_name}.settings"):
            return None
        os.environ["DJANGO_SETTINGS_MODULE"] = f"{module_name}.settings"
    import django
    from django.apps import apps

    django.setup()
    if found is not None:
        return found
    if not apps.is_installed(APP_NAME):
        raise ImproperlyConfigured(
            f"{os.environ['DJANGO_SETTINGS_MODULE']} has no Conveyor app: add {APP_NAME!r} "
            "to INSTALLED_APPS (or pass -A module:app)"
        )
    from .conf import get_app

    app = get_app()
    app.set_current()
    return app
