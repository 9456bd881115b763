"""How the shim binds a Celery name: to the Conveyor object that plays its part, found at
import time, or to a stand-in that fails when used.

Binding at import time, with candidates tried in order, means a feature that lands in
Conveyor later is picked up without touching the shim; until then the test that needs it
fails with ``MissingFeature`` naming the Celery name, so the failure list says what to add.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MissingFeature", "bind", "missing", "resolve"]

Spec = str | Sequence[str] | None
"""``"conveyor.mod"`` (same name there), ``"conveyor.mod:other"``, several of those tried in
order, or None for a Celery internal that Conveyor has no reason to have."""


class MissingFeature(NotImplementedError):
    """A Celery name the test used has no Conveyor counterpart (yet)."""


class _Missing(type):
    """Metaclass of the stand-ins: a class (so ``isinstance`` and subclassing work) that
    fails on any call or public attribute."""

    _message: str

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise MissingFeature(cls._message)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise MissingFeature(cls._message)


def missing(celery_name: str, looked_for: Sequence[str]) -> type:
    where = ", ".join(looked_for) if looked_for else "none: a Celery internal"
    message = f"{celery_name} has no Conveyor counterpart (looked for: {where})"
    return _Missing(celery_name.rpartition(".")[2], (), {"_message": message})


def _candidates(name: str, spec: Spec) -> list[str]:
    if spec is None:
        return []
    paths = [spec] if isinstance(spec, str) else list(spec)
    return [path if ":" in path else f"{path}:{name}" for path in paths]


def resolve(celery_name: str, spec: Spec) -> Any:
    """The first candidate that imports, else a stand-in that names what was looked for."""
    name = celery_name.rpartition(".")[2]
    candidates = _candidates(name, spec)
    for candidate in candidates:
        module_name, _, attr = candidate.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found = module
        try:
            for part in attr.split("."):
                found = getattr(found, part)
        except AttributeError:
            continue
        return found
    return missing(celery_name, candidates)


def bind(namespace: dict[str, Any], names: Mapping[str, Spec]) -> None:
    """Fill a shim module: ``bind(globals(), {"chain": "conveyor.canvas", ...})``."""
    module = namespace["__name__"]
    for name, spec in names.items():
        namespace[name] = resolve(f"{module}.{name}", spec)
