"""Finding tasks: ``tasks.py`` modules and ``tasks/`` packages of installed apps.

A worker only runs tasks whose modules it imported, so every process of the project
imports the same ones when Django starts. A module that exists but fails to import is an
error, not something to skip: the worker would otherwise start without its tasks.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Iterable

from django.apps import apps

__all__ = ["autodiscover_tasks"]


def _spec_exists(name: str) -> tuple[bool, list[str]]:
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # the parent is a module, not a package
        return False, []
    if spec is None:
        return False, []
    return True, list(spec.submodule_search_locations or [])


def autodiscover_tasks(
    packages: Iterable[str] | None = None, related_name: str = "tasks"
) -> list[str]:
    """Import ``<package>.<related_name>`` for each package (default: every installed app);
    for a package of that name, its modules too. Returns the module names imported."""
    if packages is None:
        packages = [config.name for config in apps.get_app_configs()]
    imported: list[str] = []
    for package in packages:
        name = f"{package}.{related_name}"
        found, locations = _spec_exists(name)
        if not found:
            continue
        importlib.import_module(name)
        imported.append(name)
        for info in pkgutil.iter_modules(locations):
            if not info.name.startswith("_"):
                importlib.import_module(f"{name}.{info.name}")
                imported.append(f"{name}.{info.name}")
    return imported
