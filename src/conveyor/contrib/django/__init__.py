"""Conveyor in a Django project: add ``"conveyor.contrib.django"`` to ``INSTALLED_APPS``.

The app is then configured from ``CONVEYOR_*`` settings, the ``tasks`` modules of installed
apps are imported, workers keep database connections safe, tasks gain
``delay_on_commit``, periodic tasks live in the database (with admin pages), and results
can too (``CONVEYOR_RESULT_BACKEND = "django://"``). See docs/django.md.

This module imports nothing from Django itself, so ``conveyor`` works without Django.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...app import Conveyor

__all__ = ["autodiscover_tasks", "get_app"]


def get_app() -> Conveyor:
    """The project's Conveyor app, configured from Django settings (made on first use)."""
    from .conf import get_app as get

    return get()


def autodiscover_tasks(
    packages: Iterable[str] | None = None, related_name: str = "tasks"
) -> list[str]:
    """Import ``<package>.tasks`` for each package (every installed app by default)."""
    from .discovery import autodiscover_tasks as discover

    return discover(packages, related_name)
