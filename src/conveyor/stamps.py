"""Signature stamping, as Celery 5.3+ has it: custom headers put on every task of a canvas.

``sig.stamp(visitor=None, append_stamps=False, **stamps)`` sets each stamp as an option of
the signature and lists its name in ``options["stamped_headers"]``; a chain, group or chord
stamps every task in it, and a task's link and link_error callbacks too. A
``StampingVisitor`` decides the stamps node by node. When a task is sent its stamps travel
in the message's headers (``self.request.stamps`` in the task), so a worker can refuse
every task carrying a stamp that ``app.control.revoke_by_stamped_headers`` revoked.

Stamps are the task's own: a workflow hands its ``headers`` on to what follows a task,
but not its stamps (those are set where the canvas was stamped), as in Celery.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from .keys import revoked_stamp_key
from .signatures import Signature, as_list, as_signature, set_stamper

__all__ = [
    "StampingVisitor",
    "stamp",
    "stamp_keys",
    "stamps_into_headers",
    "without_stamps",
]

STAMPED = "stamped_headers"


class StampingVisitor(ABC):
    """Decides the stamps of each node of a canvas; each ``on_*`` returns stamps to add."""

    def on_group_start(self, group: Any, **headers: Any) -> dict[str, Any]:
        return {}

    def on_group_end(self, group: Any, **headers: Any) -> None:
        return None

    def on_chain_start(self, chain: Any, **headers: Any) -> dict[str, Any]:
        return {}

    def on_chain_end(self, chain: Any, **headers: Any) -> None:
        return None

    @abstractmethod
    def on_signature(self, sig: Signature, **headers: Any) -> dict[str, Any]:
        """The stamps of one task."""

    def on_chord_header_start(self, sig: Any, **headers: Any) -> dict[str, Any]:
        return self.on_group_start(sig.header, **headers)

    def on_chord_header_end(self, sig: Any, **headers: Any) -> None:
        self.on_group_end(sig.header, **headers)

    def on_chord_body(self, sig: Any, **headers: Any) -> dict[str, Any]:
        return {}

    def on_callback(self, callback: Signature, **headers: Any) -> dict[str, Any]:
        return {}

    def on_errback(self, errback: Signature, **headers: Any) -> dict[str, Any]:
        return {}


def _merge(into: dict[str, Any], more: Mapping[str, Any], append: bool) -> None:
    """Add ``more``'s stamps; with ``append`` a stamp set twice keeps every value (a list)."""
    for key, value in more.items():
        if key == STAMPED:
            continue
        if append and key in into:
            old = into[key] if isinstance(into[key], list) else [into[key]]
            into[key] = old + (value if isinstance(value, list) else [value])
        elif key not in into:
            into[key] = value


def _headers(
    sig: Signature,
    visited: Mapping[str, Any] | None,
    append: bool,
    headers: Mapping[str, Any],
    own: bool = True,
) -> dict[str, Any]:
    """The stamps to set on ``sig``: the given ones, then the visitor's, then (``own``) the
    ones it has already; the first wins unless ``append``."""
    merged = {k: v for k, v in headers.items() if k != STAMPED}
    if visited:
        _merge(merged, visited, append)
    if own:
        existing = sig.options.get(STAMPED) or []
        _merge(merged, {k: sig.options[k] for k in existing if k in sig.options}, append)
    merged[STAMPED] = sorted(k for k in merged if k != STAMPED)
    return merged


def _stamp_links(
    sig: Signature, visitor: StampingVisitor | None, append: bool, **headers: Any
) -> None:
    for key, hook in (("link", "on_callback"), ("link_error", "on_errback")):
        for link in as_list(sig.options.get(key)):
            link = as_signature(link, sig._app)
            visited = getattr(visitor, hook)(link, **headers) if visitor is not None else None
            stamp(link, visitor, append, **_headers(link, visited, append, headers, own=False))


def stamp(
    sig: Signature, visitor: StampingVisitor | None = None, append: bool = False, **headers: Any
) -> Signature:
    """Stamp ``sig`` and everything it holds (see the module docstring); returns ``sig``."""
    from .canvas import chain, chord, group  # deferred: the canvas sends through modules using this

    if isinstance(sig, chain | group):
        start = "on_chain_start" if isinstance(sig, chain) else "on_group_start"
        visited = getattr(visitor, start)(sig, **headers) if visitor is not None else None
        headers = _headers(sig, visited, append, headers)
        _stamp_links(sig, visitor, append, **headers)
        for task in sig.tasks:
            stamp(task, visitor, append, **headers)
        if visitor is not None:
            end = "on_chain_end" if isinstance(sig, chain) else "on_group_end"
            getattr(visitor, end)(sig, **headers)
        return sig
    if isinstance(sig, chord):
        visited = visitor.on_chord_header_start(sig, **headers) if visitor is not None else None
        headers = _headers(sig, visited, append, headers)
        _stamp_links(sig, visitor, append, **headers)
        for task in sig.header.tasks:
            stamp(task, visitor, append, **headers)
        if visitor is not None:
            visitor.on_chord_header_end(sig, **headers)
            if sig.kwargs.get("body") is not None:  # as in Celery, only a visitor stamps it
                body = visitor.on_chord_body(sig, **headers)
                stamp(sig.body, visitor, append, **_headers(sig, body, append, headers))
        return sig
    _stamp_links(sig, visitor, append, **headers)
    visited = visitor.on_signature(sig, **headers) if visitor is not None else None
    return sig.set(**_headers(sig, visited, append, headers))


set_stamper(stamp)


# -- in the message ------------------------------------------------------------------------


def stamps_into_headers(options: Mapping[str, Any]) -> dict[str, Any]:
    """Send options with the stamps moved into ``headers``: each stamp by its name, and
    ``stamped_headers`` listing them (Celery's message headers)."""
    names = list(options.get(STAMPED) or ())
    out = {k: v for k, v in options.items() if k != STAMPED and k not in names}
    stamps = {name: options[name] for name in names if name in options}
    out["headers"] = {**(options.get("headers") or {}), **stamps, STAMPED: sorted(stamps)}
    return out


def without_stamps(headers: Mapping[str, Any]) -> dict[str, Any]:
    """``headers`` less a task's stamps: what a workflow hands on to the next task."""
    names = headers.get(STAMPED)
    if not names:
        return dict(headers)
    return {k: v for k, v in headers.items() if k != STAMPED and k not in names}


def stamp_keys(headers: Mapping[str, Any]) -> list[str]:
    """The revocation keys of every stamp a message carries (a list stamp: each value)."""
    keys = []
    for name in headers.get(STAMPED) or ():
        value = headers.get(name)
        for item in value if isinstance(value, list) else [value]:
            keys.append(revoked_stamp_key(name, item))
    return keys
