"""What every command shares: loading the app that ``-A`` names, common options, errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from importlib import import_module
from typing import Any

import click

from ..app import Conveyor
from ..exceptions import ConveyorError
from ..locate import locate_app

__all__ = [
    "LOG_LEVELS",
    "Commands",
    "app_option",
    "ctx_app",
    "django_project_app",
    "json_arg",
    "load_app",
    "loglevel_option",
    "show_value",
]


def load_app(spec: str | None) -> Conveyor:
    """Import what ``-A`` names (``proj``, ``proj.celery:app``, ``proj.celery.app``: see
    ``conveyor.locate``); in a Django project, the app ``conveyor.contrib.django``
    configured (see ``django_project_app``)."""
    spec = spec or os.environ.get("CONVEYOR_APP")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if not spec:
        found = django_project_app(None)
        if found is None:
            raise click.UsageError("which app? pass -A module:app (or set CONVEYOR_APP)")
        return found
    app, module_name = locate_app(spec)
    if app is not None:
        return _loaded(app)
    found = django_project_app(module_name)
    if found is not None:
        return found
    raise click.UsageError(f"no Conveyor app found in {module_name!r}: pass -A {module_name}:NAME")


def _loaded(app: Conveyor) -> Conveyor:
    django_project_app(None, app)  # an app defined in a Django project needs Django set up
    app.set_current()
    return app


def django_project_app(module_name: str | None, found: Conveyor | None = None) -> Conveyor | None:
    """Set Django up when DJANGO_SETTINGS_MODULE is set (or ``module_name`` is a Django
    project package) and return the app its integration configured; None otherwise."""
    try:
        from ..contrib.django.project import project_app
    except ImportError:  # pragma: no cover - the contrib package ships with conveyor
        return None
    try:
        return project_app(module_name, found)
    except ConveyorError as exc:
        raise click.UsageError(str(exc)) from None


def ctx_app(ctx: click.Context, local: str | None) -> Conveyor:
    """The app a command's own ``-A`` names, else the group's."""
    return load_app(local or (ctx.obj or {}).get("app"))


app_option = click.option("-A", "--app", "app_spec", help="module:app to load.")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL")
loglevel_option = click.option(
    "-l",
    "--loglevel",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
    callback=lambda ctx, param, value: value.upper(),
    help="Log level.",
)

CELERY_WORKER_FLAGS = {
    "without_gossip": "--without-gossip",
    "without_mingle": "--without-mingle",
    "without_heartbeat": "--without-heartbeat",
}
"""Celery worker flags for AMQP features Conveyor's workers do not have: accepted, noted."""


class Commands(click.Group):
    """The command group: an error of Conveyor's (an unreachable broker, a bad URL) ends
    any command with a one-line message and exit status 1, not a traceback.

    ``lazy`` names commands by where they live (``{"worker": ".worker:worker"}``, relative
    to this package): a command's module is imported when that command is run or listed,
    so ``conveyor worker`` does not start by importing every other command's.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, name = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(import_module(module, __package__), name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and args[0] not in self.lazy:
            for name in self.lazy:  # an unknown name: "Did you mean" picks among them all
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            raise click.ClickException(str(exc)) from None


def json_arg(value: str | None, what: str, kind: type) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{what} must be JSON: {exc}") from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"{what} must be a JSON {kind.__name__}")
    return parsed


def show_value(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except TypeError:
        return repr(value)
