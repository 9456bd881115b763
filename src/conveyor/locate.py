"""What ``-A`` names, found as Celery finds it.

``-A proj`` (a module or package), ``-A proj.celery:app`` and ``-A proj.celery.app`` all
work. In a module, the app is the attribute named ``app``, ``celery`` or ``conveyor``, or
the only app it holds; in a package without one, the app of its ``celery`` or
``conveyor`` submodule (Celery's Django layout keeps it in ``proj/celery.py``). A file
path is not a module name: that is a one-line error saying what to pass instead.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

import click

from .app import Conveyor

__all__ = ["AppNotFound", "locate_app"]

ATTRIBUTES = ("app", "celery", "conveyor")
SUBMODULES = ("celery", "conveyor")


class AppNotFound(click.ClickException):
    """``-A`` names nothing usable: one line on stderr and exit status 2 (a usage error)."""

    exit_code = 2


def _exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent is not a package, or not importable
        return False


def _checked_name(spec: str, module_name: str) -> None:
    if module_name and all(part.isidentifier() for part in module_name.split(".")):
        return
    hint = ""
    if "/" in spec or spec.endswith(".py"):
        guess = spec.removesuffix(".py").strip("./").replace("/", ".")
        hint = f" (for the file {spec}: run from its project directory with -A {guess})"
    raise AppNotFound(
        f"-A {spec}: not a module name; -A takes a Python module such as proj, proj.celery "
        f"or proj.celery:app{hint}, and a module elsewhere needs its directory on PYTHONPATH"
    )


def _import(module_name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise AppNotFound(f"cannot import {module_name!r} for -A {spec}: {exc}") from None


def _app_in(module: ModuleType) -> Conveyor | None:
    for name in ATTRIBUTES:
        candidate = getattr(module, name, None)
        if isinstance(candidate, Conveyor):
            return candidate
    apps = {id(v): v for v in vars(module).values() if isinstance(v, Conveyor)}
    return next(iter(apps.values())) if len(apps) == 1 else None


def locate_app(spec: str) -> tuple[Conveyor | None, str]:
    """The app ``spec`` names (None when the module holds none) and the module searched."""
    module_name, colon, attr = spec.partition(":")
    _checked_name(spec, module_name)
    if not colon and not _exists(module_name):  # proj.celery.app: a module's attribute
        head, _, tail = module_name.rpartition(".")
        if head and _exists(head):
            module_name, attr = head, tail
    module = _import(module_name, spec)
    if attr:
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part, None)
        if not isinstance(obj, Conveyor):
            raise AppNotFound(f"-A {spec}: {module_name}.{attr} is not a Conveyor app")
        return obj, module_name
    found = _app_in(module)
    if found is None and hasattr(module, "__path__"):
        for submodule in SUBMODULES:
            if found is None and _exists(f"{module_name}.{submodule}"):
                found = _app_in(_import(f"{module_name}.{submodule}", spec))
    return found, module_name
