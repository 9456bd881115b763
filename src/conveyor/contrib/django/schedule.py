"""Replacing the whole database schedule from a definition in code, in one transaction.

The pattern from HackSoft's Django styleguide: one management command holds every
periodic task of the project and runs on each deploy, deleting and recreating them all.
``replace_periodic_tasks`` gives the same end state (the table holds exactly what the
definition says, admin edits included are undone) without the deleting: an entry that
stays keeps its run history, so a deploy neither repeats nor drops a run, and running
schedulers see one change when the transaction commits.

Entries declared with ``beat_schedule`` / ``@app.periodic_task`` belong to the schedulers
(they sync them at start) and are left alone unless the definition names them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from ...beat.entries import Entry, entry_from_config
from ...beat.schedules import crontab
from ...task import Task
from .conf import get_app
from .models import PeriodicTask
from .store import DjangoStore, delete_unused_schedules

__all__ = ["Replaced", "SetupPeriodicTasksCommand", "replace_periodic_tasks", "to_entries"]

Definition = Mapping[str, Mapping[str, Any] | Entry] | Iterable[Mapping[str, Any] | Entry]
"""``{"name": {"task": ..., "schedule": ...}}`` (as ``beat_schedule``), or a list of such
dicts with a ``"name"`` key, or of ``Entry``. ``task`` may be the task itself; ``cron``
(a dict of crontab fields, as in the styleguide) may stand for ``schedule``."""


@dataclass
class Replaced:
    """What ``replace_periodic_tasks`` did, by entry name."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"{what}: {', '.join(names)}"
            for what, names in (
                ("added", self.added),
                ("changed", self.changed),
                ("unchanged", self.unchanged),
                ("removed", self.removed),
            )
            if names
        ]


def _entry(name: str, config: Mapping[str, Any] | Entry) -> Entry:
    if isinstance(config, Entry):
        return replace(config, name=name, source="runtime")
    config = {k: v for k, v in config.items() if k != "name"}
    if isinstance(config.get("task"), Task):
        config["task"] = config["task"].name
    if "cron" in config:
        config["schedule"] = crontab(**config.pop("cron"))
    return replace(entry_from_config(name, config), source="runtime")


def to_entries(definition: Definition) -> dict[str, Entry]:
    """The entries a definition describes; ValueError on a duplicate or nameless one."""
    if isinstance(definition, Mapping):
        return {name: _entry(name, config) for name, config in definition.items()}
    found: dict[str, Entry] = {}
    for item in definition:
        name = item.name if isinstance(item, Entry) else item.get("name")
        if not name:
            raise ValueError(f"periodic task without a name: {item!r}")
        if name in found:
            raise ValueError(f"two periodic tasks are named {name!r}")
        found[name] = _entry(name, item)
    return found


def replace_periodic_tasks(
    definition: Definition, *, using: str | None = None, now: datetime | None = None
) -> Replaced:
    """Make the database schedule exactly ``definition`` (plus the code-declared entries),
    in one transaction; safe to run on every deploy."""
    wanted = to_entries(definition)
    store = DjangoStore(get_app(), using)
    report = Replaced()
    with transaction.atomic(using=using):
        rows = PeriodicTask.objects.using(using).select_for_update()
        current = {row.name: row.source for row in rows}
        for name, source in sorted(current.items()):
            if name not in wanted and source != "code":
                store.remove(name)
                report.removed.append(name)
        for name, entry in wanted.items():
            before = store.get(name) if name in current else None
            same = before is not None and before.same_definition(entry)
            if same and before is not None and before.enabled == entry.enabled:
                report.unchanged.append(name)
                continue
            store.upsert(entry, now)
            (report.added if name not in current else report.changed).append(name)
        delete_unused_schedules(using)
    return report


class SetupPeriodicTasksCommand(BaseCommand):
    """Base for a project's ``setup_periodic_tasks`` command: define ``periodic_tasks()``.

    ``--dry-run`` shows what would change and changes nothing.
    """

    help = "Replace every periodic task with the ones defined in code (run on each deploy)."

    def periodic_tasks(self) -> Definition:
        raise NotImplementedError("return the project's periodic tasks")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = self.replace(self.periodic_tasks(), dry_run=options["dry_run"])
        for line in report.lines() or ["no periodic tasks"]:
            self.stdout.write(line)

    def replace(self, definition: Definition, dry_run: bool = False) -> Replaced:
        with transaction.atomic():
            report = replace_periodic_tasks(definition)
            if dry_run:
                transaction.set_rollback(True)
        return report
