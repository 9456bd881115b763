"""``manage.py conveyor_setup_periodic_tasks shop.periodic:PERIODIC_TASKS``: replace every
periodic task with the definition at that path, in one transaction (run it on each deploy).

Projects that prefer the definition inside a command of their own subclass
``conveyor.contrib.django.schedule.SetupPeriodicTasksCommand`` instead.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.core.management.base import CommandError, CommandParser

from ...schedule import Definition, SetupPeriodicTasksCommand


class Command(SetupPeriodicTasksCommand):
    help = (
        "Replace every periodic task with the definition at DEFINITION (module:attribute: "
        "a dict or list of periodic tasks, or a function returning one), in one transaction."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("definition", help="module:attribute of the definition")
        super().add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        self._path = str(options["definition"])
        super().handle(*args, **options)

    def periodic_tasks(self) -> Definition:
        module_name, _, attr = self._path.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                found = getattr(found, part)
        except (ImportError, AttributeError) as exc:
            raise CommandError(f"cannot load {self._path!r}: {exc}") from exc
        definition: Definition = found() if callable(found) else found
        return definition
