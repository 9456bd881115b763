"""Finding tasks: ``app.autodiscover_tasks()``, as Celery's Django layout calls it.

``app.autodiscover_tasks(["proj.orders", "proj.mail"])`` imports ``proj.orders.tasks`` and
``proj.mail.tasks`` (for a ``tasks/`` package, its modules too). ``packages`` may be a
callable (``lambda: settings.INSTALLED_APPS``), called only then; without packages, the
installed apps of a Django project that is set up. As in Celery, nothing is imported when
it is called: a worker or scheduler imports them when it starts (``app.import_includes``),
and any process does when it looks up a task name it does not know; ``force=True``
imports at once.

A worker only runs tasks whose modules it imported, so a module that exists but fails to
import is an error, not something to skip: the worker would otherwise start without its
tasks. A package without the module is skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from .exceptions import ImproperlyConfigured

__all__ = ["Discovery", "import_related"]

logger = logging.getLogger("conveyor")

Packages: TypeAlias = Iterable[str] | Callable[[], Iterable[str]] | None


def _locations(name: str) -> list[str] | None:
    """Where module ``name``'s submodules are (empty for a plain module); None if absent."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a parent is missing, or is a module and not a package
        return None
    if spec is None:
        return None
    return list(spec.submodule_search_locations or [])


def _package_of(entry: str) -> str:
    """The package an INSTALLED_APPS-style entry names: itself, or for the dotted path of
    an AppConfig class (``"shop.emails.apps.EmailsConfig"``) the app's ``name``."""
    if _locations(entry) is not None:
        return entry
    module_name, _, attr = entry.rpartition(".")
    config = getattr(importlib.import_module(module_name), attr, None) if module_name else None
    name = getattr(config, "name", None)
    if not isinstance(name, str):
        raise ImproperlyConfigured(
            f"autodiscover_tasks() was given {entry!r}, which is neither an importable package "
            "nor an app config class: pass package names such as 'proj.orders'"
        )
    return name


def import_related(packages: Iterable[str], related_name: str = "tasks") -> list[str]:
    """Import ``<package>.<related_name>`` for each package (for a package of that name,
    its modules too); the names imported, in order."""
    imported: list[str] = []
    for entry in packages:
        name = f"{_package_of(entry)}.{related_name}"
        locations = _locations(name)
        if locations is None:
            continue
        importlib.import_module(name)
        imported.append(name)
        for info in pkgutil.iter_modules(locations):
            if not info.name.startswith("_"):
                importlib.import_module(f"{name}.{info.name}")
                imported.append(f"{name}.{info.name}")
    return imported


def _django_packages() -> list[str] | None:
    """The installed apps of a Django project that is set up (Celery's default); None
    when Django is not in use in this process."""
    django_apps: Any = sys.modules.get("django.apps")
    if django_apps is None:
        return None
    registry = django_apps.apps
    if not registry.ready:
        raise ImproperlyConfigured(
            "autodiscover_tasks() without packages looks in Django's installed apps, and "
            "Django is not set up yet: call django.setup() first (the conveyor command does "
            "when DJANGO_SETTINGS_MODULE is set), or pass the packages"
        )
    return [config.name for config in registry.get_app_configs()]


class Discovery:
    """The ``autodiscover_tasks`` calls of one app not run yet."""

    def __init__(self) -> None:
        self._pending: list[tuple[Packages, str]] = []
        self._lock = threading.RLock()

    def add(self, packages: Packages, related_name: str) -> None:
        with self._lock:
            self._pending.append((packages, related_name))

    def run(self) -> list[str]:
        """Import what every pending call names; the module names imported."""
        with self._lock:
            pending, self._pending = self._pending, []
            imported: list[str] = []
            for index, (packages, related_name) in enumerate(pending):
                try:
                    imported += self._one(packages, related_name)
                except BaseException:
                    self._pending[:0] = pending[index:]  # raised again by the next run
                    raise
            return imported

    @staticmethod
    def _one(packages: Packages, related_name: str) -> list[str]:
        names = packages() if callable(packages) else packages
        if names is None:
            names = _django_packages()
        if names is None:
            logger.warning(
                "autodiscover_tasks() was given no packages and this is no Django project: "
                "nothing to discover (pass the packages that hold tasks)"
            )
            return []
        return import_related(names, related_name)

    def __bool__(self) -> bool:
        return bool(self._pending)
