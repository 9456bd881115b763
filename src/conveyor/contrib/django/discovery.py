"""Finding tasks: ``tasks.py`` modules and ``tasks/`` packages of installed apps.

Every process of the project (web, worker, beat, shell) imports the same ones when Django
starts, so each knows the same tasks by the same names. The finding and importing is
``conveyor.discovery``'s (the same as ``app.autodiscover_tasks``); this module supplies
the installed apps.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.apps import apps

from ...discovery import import_related

__all__ = ["autodiscover_tasks"]


def autodiscover_tasks(
    packages: Iterable[str] | None = None, related_name: str = "tasks"
) -> list[str]:
    """Import ``<package>.<related_name>`` for each package (default: every installed app);
    for a package of that name, its modules too. Returns the module names imported."""
    if packages is None:
        packages = [config.name for config in apps.get_app_configs()]
    return import_related(packages, related_name)
