"""Settings: a fixed set of names, so a typo is an error that names it, not a silent default.

Sources, later ones winning: defaults, ``CONVEYOR_<NAME>`` environment variables,
keyword arguments to ``Conveyor(...)``, then ``config_from_object`` and assignments to
``app.conf`` in the order they happen.

Settings are read when first needed: ``config_from_object("django.conf:settings", ...)``
only notes the object, so a settings module still importing (a test settings module doing
``from proj.settings import *``) is read once complete. Django's settings stay live:
``override_settings`` and pytest-django's ``settings`` fixture reach the app at once.

Celery's names are understood: a Celery setting with no meaning here is accepted with one
warning; upper-case keys (a Flask app's config, a Django settings module without a
namespace) are read when ``CELERY_``/``CONVEYOR_`` prefixed or one of Celery's old names,
and skipped otherwise.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from . import config_django
from .celery_settings import (
    CELERY_ONLY,
    DJANGO_STORE,
    close_name,
    old_name,
    store_for_scheduler,
    warn_ignored,
)
from .exceptions import ImproperlyConfigured

__all__ = ["Settings"]

ENV_PREFIX = "CONVEYOR_"
_SKIPPED = frozenset({"APP"})
"""Upper-case keys under a namespace that name no setting: ``CONVEYOR_APP`` / ``CELERY_APP``
name the app, for the command line."""
_OWN_PREFIXES = ("CONVEYOR_", "CELERY_", "CELERYD_", "CELERYBEAT_")
"""Upper-case keys with these prefixes must name a setting; others may be anything."""
_SETTING_PREFIXES = ("task_", "worker_", "broker_", "result_", "beat_")
"""A lower-case attribute of a settings object with these prefixes must name a setting."""


@dataclass(eq=False, init=False)
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
    task_routes: Any = None
    """Where tasks go: a dict of names and glob patterns, a router function, or a list of
    those (Celery's ``task_routes``; see ``conveyor.routing``)."""
    task_queues: Any = None
    """The queues a worker started without ``-Q`` consumes: names or ``Queue`` objects."""
    task_create_missing_queues: bool = True
    """Whether a route or ``-Q`` may name a queue that ``task_queues`` does not list."""
    task_default_priority: int = 0
    task_track_started: bool = True
    task_track_received: bool = False
    task_acks_late: bool = True
    task_ignore_result: bool = False
    task_default_max_retries: int | None = 3
    task_default_retry_delay: float = 180.0
    task_time_limit: float | None = None
    task_soft_time_limit: float | None = None
    task_max_deliveries: int = 3
    task_revoke_expires: float = 7 * 86400.0
    idempotency_window: float = 86400.0
    max_payload_size: int = 1024 * 1024
    broker_lease: float = 30.0
    broker_publish_retries: int = 5
    broker_publish_retry_delay: float = 0.2
    worker_concurrency: int | None = None
    worker_prefetch_multiplier: int | None = None
    """None: each consumer adapts its batches (4 messages, more while tasks are quick) and
    hands unstarted ones back behind a long task. A number: Celery's meaning, each consumer
    reserves that many at a time and keeps them until it runs them."""
    worker_max_tasks_per_child: int | None = None
    worker_send_task_events: bool = True
    """Whether workers write task and worker events to the broker's event stream
    (``conveyor events``, ``conveyor top``, ``tasks show``); on by default, unlike Celery."""
    task_send_sent_event: bool = False
    """Whether sending a task also writes a ``task-sent`` event: a write more per send, so
    off by default, as in Celery."""
    events_max_length: int = 100_000
    """About how many of the newest events the broker's event stream keeps."""
    worker_pool: str = "prefork"
    worker_async_concurrency: int = 100
    """``async def`` tasks each worker process runs at once on its event loop
    (``conveyor worker --async-concurrency``)."""
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
    dashboard_token: str | None = None
    """``conveyor dashboard`` asks for this token (a page to log in, or a Bearer header)."""
    dashboard_basic_auth: str | None = None
    """``conveyor dashboard`` asks for HTTP basic auth with this ``user:password``."""
    dashboard_read_only: bool = False
    """``conveyor dashboard`` shows no action (revoke, retry, purge, enable...)."""
    dashboard_mask: list[str] = field(default_factory=list)
    """Argument and result fields the dashboard never shows, for every task (a task's own
    ``dashboard_mask=[...]`` option adds to it)."""
    include: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    """Celery's other name for modules a worker imports at start; read beside ``include``."""

    def __init__(self) -> None:
        defaults = {
            f.name: f.default_factory()
            if f.default_factory is not dataclasses.MISSING
            else f.default
            for f in dataclasses.fields(self)
        }
        state = {
            "_defaults": defaults,
            "_history": [],
            "_celery": {},
            "_listeners": [],
            "_lock": threading.RLock(),
            "_dirty": False,
            "_building": None,
            "_last": {},
        }
        self.__dict__.update(state)
        self.__dict__.update(defaults)

    # -- reading ----------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        """Reached only for a setting not loaded yet (or one of Celery's)."""
        if name in _FIELDS and "_history" in self.__dict__:
            self._build()
            value = self.__dict__.get(name, _MISSING)
            return getattr(self, name) if value is _MISSING else value  # changed meanwhile
        if name in CELERY_ONLY:
            return self.__dict__.get("_celery", {}).get(name)
        raise AttributeError(str(unknown_setting(name)))

    def __getitem__(self, name: str) -> Any:
        if name not in _FIELDS and name not in CELERY_ONLY:
            raise unknown_setting(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    # -- writing ----------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        self._assign([(_checked(name), value, None)])

    def __setitem__(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def update(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Set many settings; every key is checked before any is set.

        Lower-case keys must be settings (Conveyor's or Celery's). Upper-case keys, as in
        ``app.conf.update(flask_app.config)``: ``CONVEYOR_``/``CELERY_`` prefixed ones and
        Celery's old names (``BROKER_URL``) are settings, other ones are skipped.
        """
        items = [
            (setting_name(key), value, key) for key, value in {**(values or {}), **more}.items()
        ]
        self._assign([(name, value, key) for name, value, key in items if name is not None])

    def load_environment(self, environ: Mapping[str, str] | None = None) -> None:
        """Apply ``CONVEYOR_<NAME>`` variables; values parse as JSON where they can. A
        variable that names no setting is an error, as an unknown keyword is."""
        environ = os.environ if environ is None else environ
        items: list[tuple[str, Any, str | None]] = []
        for key, raw in environ.items():
            if not key.startswith(ENV_PREFIX) or key[len(ENV_PREFIX) :] in _SKIPPED:
                continue
            source = f"environment variable {key}"
            name = _checked(key[len(ENV_PREFIX) :].lower(), source)
            items.append((name, _parse_env(name, raw) if name in _FIELDS else raw, source))
        self._assign(items)

    def load_object(self, obj: object | str, namespace: str | None = None) -> None:
        """Read settings from an object or dotted path (``"django.conf:settings"``) when
        they are first needed; Django's settings are then followed as they change.

        With a namespace, only ``NAMESPACE_NAME`` attributes are read (upper case, as in a
        Django settings module); an unknown name under the namespace is an error.
        """
        with self._lock:
            item = ("object", obj, namespace)
            self._history[:] = [h for h in self._history if h[:3] != item]
            self._history.append(item)
            self._mark_dirty()

    @contextmanager
    def override(self, **values: Any) -> Iterator[None]:
        """Settings changed for the block only; afterwards every source counts again."""
        items = [(_checked(name), value, None) for name, value in values.items()]
        marks = [("override", name, value) for name, value, _ in items if name in _FIELDS]
        with self._lock:
            self._history.extend(marks)
            self._mark_dirty()
        try:
            yield
        finally:
            with self._lock:
                self._history[:] = [h for h in self._history if not any(h is m for m in marks)]
                self._mark_dirty()
            self._build()

    def on_change(self, listener: Callable[[set[str]], None]) -> None:
        """Call ``listener(names)`` with the names whose values changed, after each change."""
        self._listeners.append(listener)

    # -- the machinery ----------------------------------------------------------------

    def _assign(self, items: list[tuple[str, Any, str | None]]) -> None:
        values = {}
        for name, value, source in items:
            for target, converted in _translated(name, value, source):
                values[target] = converted
        with self._lock:
            history = self._history
            for name, value in values.items():
                history[:] = [h for h in history if not (h[0] == "set" and h[1] == name)]
                history.append(("set", name, value))
            if self._dirty:
                return
            changed = self._apply(values)
        self._notify(changed)

    def _apply(self, values: Mapping[str, Any]) -> set[str]:
        changed = set()
        for name, value in values.items():
            if name in _FIELDS:
                if _differs(self.__dict__.get(name), value):
                    changed.add(name)
                self.__dict__[name] = value
            else:
                self._celery[name] = value
        return changed

    def _mark_dirty(self) -> None:
        if not self._dirty:
            self.__dict__["_dirty"] = True  # first: a reader finding no value builds
            self.__dict__["_last"] = {name: self.__dict__.pop(name) for name in _FIELDS}

    def _build(self) -> None:
        """Apply every source in order (the first read after a change of sources)."""
        with self._lock:
            if not self._dirty:
                return
            if self._building == threading.get_ident():
                raise ImproperlyConfigured(
                    "the app's settings were read while they were being loaded (code run by "
                    "importing the settings module reads app.conf): read them later"
                )
            self.__dict__["_building"] = threading.get_ident()
            try:
                values, celery = self._replay()
            finally:
                self.__dict__["_building"] = None
            last = self._last
            self.__dict__.update(values)
            self.__dict__["_celery"] = celery
            self.__dict__["_dirty"] = False
        self._notify({name for name in _FIELDS if _differs(last.get(name), values[name])})

    def _replay(self) -> tuple[dict[str, Any], dict[str, Any]]:
        values = dict(self._defaults)
        celery: dict[str, Any] = {}
        for item in self._history:
            if item[0] == "object":
                found = _read_object(item[1], item[2], self._source_changed)
            else:
                found = [(item[1], item[2])]
            for name, value in found:
                (values if name in _FIELDS else celery)[name] = value
        return values, celery

    def _source_changed(self, key: str) -> None:
        """A watched source (Django's settings) changed ``key``: apply it now."""
        if not key.startswith((*_OWN_PREFIXES, "BROKER_")) and not any(
            h[0] == "object" and h[2] and key.startswith(f"{h[2]}_") for h in self._history
        ):
            return
        with self._lock:
            self._mark_dirty()
        try:
            self._build()
        except Exception:  # a bad value: raised again where the settings are next read
            return

    def _notify(self, changed: set[str]) -> None:
        if changed:
            for listener in list(self._listeners):
                listener(changed)


_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))
for _name in _FIELDS:  # a setting missing from an instance is read through __getattr__
    if _name in Settings.__dict__:
        delattr(Settings, _name)
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


_MISSING: Any = object()


def setting_name(key: str) -> str | None:
    """The setting ``key`` names in a mapping of settings (None: not a setting, skip it).

    Lower case: the name itself, which must be Conveyor's or Celery's. Upper case:
    ``CONVEYOR_X`` / ``CELERY_X`` name setting x, and Celery's old names (``BROKER_URL``,
    ``CELERYD_CONCURRENCY``) the new ones; other upper-case keys are the host's own.
    """
    if not key.isupper():
        return _checked(key)
    for prefix in ("CONVEYOR_", "CELERY_"):
        rest = key[len(prefix) :] if key.startswith(prefix) else ""
        if rest in _SKIPPED:
            return None
        if _known(rest.lower()):
            return rest.lower()
    name = old_name(key, _FIELDS)
    if name is None and key.startswith(_OWN_PREFIXES):
        raise unknown_setting(key)
    return name


def _known(name: str) -> bool:
    return name in _FIELDS or name in CELERY_ONLY


def _checked(name: str, source: str | None = None) -> str:
    if not _known(name):
        raise unknown_setting(name, source)
    return name


def _translated(name: str, value: Any, source: str | None) -> list[tuple[str, Any]]:
    """What setting ``name`` to ``value`` means here: itself (seconds for a timedelta);
    for Celery's ``beat_scheduler``, the schedule store it stands for; for a Celery
    setting without meaning here, itself after a warning (kept, never read)."""
    if name == "beat_scheduler":
        store = store_for_scheduler(str(value))
        if store is None:  # Celery's default scheduler: the default store
            return []
        if store == DJANGO_STORE:
            return [("beat_store", store)]
    if name in CELERY_ONLY:
        warn_ignored(name, source)
    elif name in _SECONDS and isinstance(value, timedelta):
        value = value.total_seconds()
    return [(name, value)]


def _read_object(
    obj: object | str, namespace: str | None, on_change: Callable[[str], None]
) -> list[tuple[str, Any]]:
    """The settings an object holds, translated; Django's settings are then watched."""
    if isinstance(obj, str):
        obj = _import_object(obj)
    config_django.check_ready(obj)
    prefix = f"{namespace}_" if namespace else ""
    source = f"in {obj!r}"
    found: list[tuple[str, Any]] = []
    for attr in dir(obj):
        if attr.startswith("_") or not attr.startswith(prefix):
            continue
        name: str | None
        if namespace:
            rest = attr[len(prefix) :]
            if rest.upper() in _SKIPPED:
                continue
            name = rest.lower() if _known(rest.lower()) else old_name(f"CELERY_{rest}", _FIELDS)
            if name is None:
                raise unknown_setting(attr, source)
        elif attr.isupper():
            name = setting_name(attr)
        elif _known(attr):
            name = attr
        elif attr.startswith(_SETTING_PREFIXES):
            raise unknown_setting(attr, source)
        else:
            name = None
        if name is not None:
            found.extend(_translated(name, getattr(obj, attr), f"{attr} {source}"))
    config_django.watch(obj, on_change)
    return found


def _differs(old: Any, new: Any) -> bool:
    if old is new:
        return False
    try:
        return bool(old != new)
    except Exception:
        return True


def unknown_setting(key: str, source: str | None = None) -> ImproperlyConfigured:
    """The error for a name neither Conveyor nor Celery knows, suggesting one only when it
    is really close (a typo of it)."""
    prefix, name = "", key
    if key.isupper():
        prefix = next((p for p in ("CONVEYOR_", "CELERY_") if key.startswith(p)), "")
        name = key[len(prefix) :].lower()
    details = " ".join(part for part in (key if key != name else "", source or "") if part)
    where = f" ({details})" if details else ""
    close = close_name(name, _FIELDS)
    hint = ""
    if close:
        spelled = f" ({prefix}{close.upper()})" if prefix else ""
        hint = f"; did you mean {close!r}{spelled}?"
    return ImproperlyConfigured(f"unknown setting {name!r}{where}{hint}")


def _parse_env(name: str, raw: str) -> Any:
    field_type = str(next(f.type for f in dataclasses.fields(Settings) if f.name == name))
    if field_type.startswith("str"):
        return raw
    listed = field_type.startswith("list") or name == "task_queues"
    if listed and not raw.lstrip().startswith("["):
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
