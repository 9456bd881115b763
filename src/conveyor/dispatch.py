"""The Signal class behind ``conveyor.signals``: Celery's (and Django's) observer API.

Receivers are held by weak reference unless ``weak=False``, so connecting a handler never
keeps its object alive. ``receivers`` is a plain list that is empty while nobody listens:
code on a hot path checks it before building a signal's arguments, and pays nothing more.
Connecting and disconnecting replace that list instead of changing it, so a send in
another thread iterates a list that nobody edits under it.
"""

from __future__ import annotations

import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

__all__ = ["Signal"]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("conveyor.signals")


def _sender_keys(sender: Any) -> frozenset[Hashable]:
    """What a sender matches by: a name (a string, or the ``name`` of a task), and an
    object's identity. So ``sender="proj.tasks.add"`` and ``sender=add`` both select
    the task ``add``, whichever of the two a signal is sent with."""
    if sender is None:
        return frozenset()
    if isinstance(sender, str):
        return frozenset({("name", sender)})
    name = getattr(sender, "name", None)
    if isinstance(name, str):
        return frozenset({("id", id(sender)), ("name", name)})
    return frozenset({("id", id(sender))})


def _receiver_id(receiver: Callable[..., Any]) -> Hashable:
    """A bound method is made afresh on every attribute access: key it by its parts."""
    owner = getattr(receiver, "__self__", None)
    function = getattr(receiver, "__func__", None)
    if owner is not None and function is not None:
        return (id(owner), id(function))
    return id(receiver)


def _accepts_keywords(receiver: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(receiver).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


@dataclass(frozen=True, slots=True)
class _Connection:
    key: tuple[Hashable, Hashable]
    """(dispatch_uid or the receiver's identity, the sender's identity): one connection each."""
    senders: frozenset[Hashable]
    """Empty: any sender."""
    target: Callable[..., Any] | weakref.ref[Any]
    weak: bool

    def resolve(self) -> Callable[..., Any] | None:
        if self.weak:
            found: Callable[..., Any] | None = self.target()
            return found
        return self.target


class Signal:
    """A signal: ``@signal.connect`` a receiver, ``signal.send(sender, **arguments)``.

    ``providing_args`` and ``use_caching`` are accepted as Celery accepts them; neither
    changes anything.
    """

    def __init__(
        self,
        providing_args: Iterable[str] | None = None,
        use_caching: bool = False,
        name: str | None = None,
    ) -> None:
        self.name = name or "signal"
        self.providing_args = frozenset(providing_args or ())
        self.receivers: list[_Connection] = []
        """Empty while nobody listens (check it before building arguments)."""
        self._lock = threading.Lock()
        self._dead = False
        """A weakly held receiver was collected: drop it at the next connect or send."""

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"

    # -- connecting ---------------------------------------------------------------------

    @overload
    def connect(
        self,
        receiver: F,
        sender: Any = None,
        weak: bool = True,
        dispatch_uid: Hashable | None = None,
    ) -> F: ...
    @overload
    def connect(
        self,
        receiver: None = None,
        sender: Any = None,
        weak: bool = True,
        dispatch_uid: Hashable | None = None,
    ) -> Callable[[F], F]: ...

    def connect(
        self,
        receiver: Callable[..., Any] | None = None,
        sender: Any = None,
        weak: bool = True,
        dispatch_uid: Hashable | None = None,
    ) -> Any:
        """Call ``receiver(signal=..., sender=..., **arguments)`` on each send.

        ``signal.connect(fn)``, ``@signal.connect`` or ``@signal.connect(sender=...)``.
        ``sender``: only sends from it (an object, or a task's name); ``dispatch_uid``:
        connect once per uid however often the code runs; ``weak=False`` keeps the
        receiver alive (a lambda or closure connected weakly is gone at once).
        """
        if receiver is None:

            def decorate(fn: F) -> F:
                self._connect(fn, sender, weak, dispatch_uid)
                return fn

            return decorate
        self._connect(receiver, sender, weak, dispatch_uid)
        return receiver

    def _connect(
        self,
        receiver: Callable[..., Any],
        sender: Any,
        weak: bool,
        dispatch_uid: Hashable | None,
    ) -> None:
        if not callable(receiver):
            raise TypeError(f"{self.name}.connect() takes a callable, not {receiver!r}")
        if not _accepts_keywords(receiver):
            label = getattr(receiver, "__qualname__", repr(receiver))
            raise ValueError(
                f"{self.name} receiver {label} must accept keyword arguments: "
                f"def {getattr(receiver, '__name__', 'handler')}(sender=None, **kwargs)"
            )
        key = (dispatch_uid or _receiver_id(receiver), _sender_identity(sender))
        target: Callable[..., Any] | weakref.ref[Any] = receiver
        if weak:
            on_death = self._drop_dead
            if inspect.ismethod(receiver):
                target = weakref.WeakMethod(receiver, on_death)
            else:
                target = weakref.ref(receiver, on_death)
        connection = _Connection(key, _sender_keys(sender), target, weak)
        with self._lock:
            receivers = self._alive()
            if all(c.key != key for c in receivers):
                receivers = [*receivers, connection]
            self.receivers = receivers

    def disconnect(
        self,
        receiver: Callable[..., Any] | None = None,
        sender: Any = None,
        weak: bool | None = None,
        dispatch_uid: Hashable | None = None,
    ) -> bool:
        """Undo a ``connect`` (same receiver or dispatch_uid, same sender); whether one was
        connected. ``weak`` is accepted as Celery accepts it, and ignored."""
        if dispatch_uid:
            ident: Hashable = dispatch_uid
        elif receiver is not None:
            ident = _receiver_id(receiver)
        else:
            raise TypeError(f"{self.name}.disconnect() needs the receiver or its dispatch_uid")
        key = (ident, _sender_identity(sender))
        with self._lock:
            receivers = self._alive()
            self.receivers = [c for c in receivers if c.key != key]
        return len(self.receivers) != len(receivers)

    def _drop_dead(self, _ref: object) -> None:
        """Run by the garbage collector, maybe while this thread holds the lock: only note it."""
        self._dead = True

    def _alive(self) -> list[_Connection]:
        """The connections whose receiver still exists (call with the lock held)."""
        if not self._dead:
            return self.receivers
        self._dead = False
        return [c for c in self.receivers if c.resolve() is not None]

    # -- sending ------------------------------------------------------------------------

    def has_listeners(self, sender: Any = None) -> bool:
        return bool(self._live(sender))

    def _live(self, sender: Any) -> list[Callable[..., Any]]:
        keys = _sender_keys(sender)
        found = []
        for connection in self.receivers:
            if connection.senders and not connection.senders & keys:
                continue
            receiver = connection.resolve()
            if receiver is not None:
                found.append(receiver)
        return found

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Callable[..., Any], Any]]:
        """Call every receiver connected for ``sender``; [(receiver, response)].

        A receiver that raises is logged and its exception is its response: the others
        still run, and neither the task nor the worker notices.
        """
        if not self.receivers:
            return []
        if self._dead:
            with self._lock:
                self.receivers = self._alive()
        responses: list[tuple[Callable[..., Any], Any]] = []
        for receiver in self._live(sender):
            try:
                response = receiver(signal=self, sender=sender, **named)
            except Exception as exc:
                logger.exception(
                    "%s receiver %s raised %s: %s",
                    self.name,
                    getattr(receiver, "__qualname__", repr(receiver)),
                    type(exc).__name__,
                    exc,
                )
                response = exc
            responses.append((receiver, response))
        return responses

    send_robust = send
    """Django's name: ``send`` already stops no receiver when one raises."""


def _sender_identity(sender: Any) -> Hashable:
    """One connection per (receiver, sender): by name for a string, else by identity."""
    if sender is None or isinstance(sender, str):
        return sender
    return id(sender)
