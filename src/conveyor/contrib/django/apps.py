"""The Django app: ``INSTALLED_APPS = [..., "conveyor.contrib.django"]``."""

from __future__ import annotations

from django.apps import AppConfig

__all__ = ["ConveyorConfig"]


class ConveyorConfig(AppConfig):
    name = "conveyor.contrib.django"
    label = "conveyor"
    verbose_name = "Conveyor"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Configure the app, then import every installed app's tasks: each process of the
        project (web, worker, beat, shell) then knows the same tasks by the same names."""
        from .conf import get_app
        from .discovery import autodiscover_tasks

        get_app()
        autodiscover_tasks()
