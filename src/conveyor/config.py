"""Settings: a fixed set of names, so a typo is an error that names it, not a silent default.

Sources, later ones winning: defaults, ``CONVEYOR_<NAME>`` environment variables,
``config_from_object``, keyword arguments to ``Conveyor(...)``, assignment to ``app.conf``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .exceptions import ImproperlyConfigured

__all__ = ["Settings"]

ENV_PREFIX = "CONVEYOR_"


@dataclass(eq=False)
class Settings:
    """Every setting Conveyor reads, with its default."""

    broker_url: str | None = None
    result_backend: str | None = None
    result_expires: float = 86400.0
    task_always_eager: bool = False
    task_eager_propagates: bool = False
    task_serializer: str = "json"
    accept_content: list[str] = field(default_factory=lambda: ["json"])
    task_default_queue: str = "default"
    task_default_priority: int = 0
    task_track_started: bool = True
    task_track_received: bool = False
    task_acks_late: bool = True
    task_ignore_result: bool = False
    task_default_max_retries: int | None = 3
    task_default_retry_delay: float = 180.0
    task_time_limit: float | None = None
    task_soft_time_limit: float | None = None
    task_max_deliveries: int = 10
    task_revoke_expires: float = 7 * 86400.0
    idempotency_window: float = 86400.0
    max_payload_size: int = 1024 * 1024
    broker_lease: float = 30.0
    broker_publish_retries: int = 5
    broker_publish_retry_delay: float = 0.2
    worker_concurrency: int | None = None
    worker_prefetch_multiplier: int = 4
    worker_max_tasks_per_child: int | None = None
    worker_pool: str = "prefork"
    timezone: str = "UTC"
    beat_schedule: dict[str, Any] = field(default_factory=dict)
    beat_store: str | None = None
    """Where periodic tasks are kept: a URL or ``module:attr`` (as ``conveyor beat --store``);
    by default beside the broker."""
    beat_cron_starting_deadline: float | None = None
    """Celery's setting: a crontab run missed by more than this many seconds is skipped,
    not sent late; None sends it (by the entry's ``catch_up``)."""
    send_on_commit: bool = False
    """Django integration: a task sent inside ``transaction.atomic`` waits for the commit
    (and is never sent if the transaction rolls back)."""
    include: list[str] = field(default_factory=list)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _FIELDS:
            raise unknown_setting(name)
        if name in _SECONDS and isinstance(value, timedelta):
            value = value.total_seconds()
        object.__setattr__(self, name, value)

    def __getitem__(self, name: str) -> Any:
        if name not in _FIELDS:
            raise unknown_setting(name)
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def update(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Set many settings; every name is checked before any is set."""
        items = {**(values or {}), **more}
        for name in items:
            if name not in _FIELDS:
                raise unknown_setting(name)
        for name, value in items.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    def load_environment(self, environ: Mapping[str, str] | None = None) -> None:
        """Apply ``CONVEYOR_<NAME>`` variables; values parse as JSON where they can."""
        environ = os.environ if environ is None else environ
        for name in _FIELDS:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                setattr(self, name, _parse_env(name, raw))

    def load_object(self, obj: object | str, namespace: str | None = None) -> None:
        """Read settings from an object or dotted path (``"django.conf:settings"``).

        With a namespace, only ``NAMESPACE_NAME`` attributes are read (upper case, as in a
        Django settings module); an unknown name under the namespace is an error.
        """
        if isinstance(obj, str):
            obj = _import_object(obj)
        prefix = f"{namespace}_" if namespace else ""
        values: dict[str, Any] = {}
        for attr in dir(obj):
            if attr.startswith("_") or not attr.startswith(prefix):
                continue
            name = attr[len(prefix) :]
            if namespace:
                name = name.lower()
                if name == "app":  # NAMESPACE_APP names the app (as CONVEYOR_APP does for the CLI)
                    continue
            elif name.lower() != name:
                continue
            if name not in _FIELDS:
                if namespace:
                    raise unknown_setting(name, source=f"{attr} in {obj!r}")
                continue
            values[name] = getattr(obj, attr)
        self.update(values)


_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))
_SECONDS = {
    "result_expires",
    "task_default_retry_delay",
    "broker_lease",
    "broker_publish_retry_delay",
    "task_time_limit",
    "task_soft_time_limit",
    "task_revoke_expires",
    "idempotency_window",
    "beat_cron_starting_deadline",
}


def unknown_setting(name: str, source: str | None = None) -> ImproperlyConfigured:
    close = difflib.get_close_matches(name, _FIELDS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    where = f" ({source})" if source else ""
    return ImproperlyConfigured(f"unknown setting {name!r}{where}{hint}")


def _parse_env(name: str, raw: str) -> Any:
    field_type = str(next(f.type for f in dataclasses.fields(Settings) if f.name == name))
    if field_type.startswith("str"):
        return raw
    if field_type.startswith("list") and not raw.lstrip().startswith("["):
        return [part.strip() for part in raw.split(",") if part.strip()]
    try:
        return json.loads(raw.lower() if raw.lower() in ("true", "false") else raw)
    except json.JSONDecodeError:
        raise ImproperlyConfigured(
            f"environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a valid value"
        ) from None


def _import_object(path: str) -> object:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module
