"""OpenTelemetry traces: a span for each publish (producer) and each run (consumer), with
the trace context carried in the message's headers, so a chain, a chord or a task that
sends others shows as one trace. Needs ``pip install 'conveyor-tasks[otel]'``.

Off until ``instrument()`` is called (in the module that makes the app, so producers and
workers both run it); then it listens to Celery's signals (``before_task_publish``,
``after_task_publish``, ``task_prerun``, ``task_postrun``). A process that never calls it
connects nothing, and the worker skips each signal it has no receiver for.

The run span is the current span while the task's code runs, so what the task sends (and
the next step of its chain, or its chord's callback, which the worker publishes before
``task_postrun``) becomes its child. Attributes follow OpenTelemetry's messaging
conventions: ``messaging.system`` "conveyor", ``messaging.destination.name`` (the queue),
``messaging.message.id`` (the task id), ``messaging.operation`` "publish" or "process".
A run that fails records its exception and ends with status ERROR.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from .. import signals, states
from ..exceptions import ImproperlyConfigured
from ..version import installed_version

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - the extra is not installed
    raise ImproperlyConfigured(
        "tracing needs opentelemetry-api: pip install 'conveyor-tasks[otel]'"
    ) from None

__all__ = ["MAX_OPEN_PUBLISHES", "instrument", "is_instrumented", "uninstrument"]

MAX_OPEN_PUBLISHES = 10_000
"""Publish spans waiting for their publish at most; a send that never happens (a batch
whose block raised) has its span ended when this many newer ones wait."""

SYSTEM = "conveyor"


class _Instrumentation:
    """The receivers, and the spans between their begin and end signals."""

    def __init__(self, tracer_provider: trace.TracerProvider | None) -> None:
        version = installed_version("0")
        self.tracer = trace.get_tracer("conveyor", version, tracer_provider=tracer_provider)
        self.publishing: OrderedDict[tuple[str, int], trace.Span] = OrderedDict()
        self.running: dict[str, tuple[trace.Span, object | None]] = {}
        self.lock = threading.Lock()

    # -- producer -----------------------------------------------------------------------

    def before_publish(
        self,
        sender: Any = None,
        headers: dict[str, Any] | None = None,
        routing_key: str = "",
        **_: Any,
    ) -> None:
        if headers is None:
            return
        parent = None
        if not trace.get_current_span().get_span_context().is_valid:
            parent = propagate.extract(headers)  # no span here: continue the sender's trace
        name = str(headers.get("task") or sender)
        task_id = str(headers.get("id"))
        span = self.tracer.start_span(
            f"publish {name}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation": "publish",
                "messaging.operation.type": "publish",
                "messaging.destination.name": routing_key,
                "messaging.message.id": task_id,
                "conveyor.task.name": name,
                "conveyor.task.retries": int(headers.get("retries") or 0),
            },
        )
        propagate.inject(headers, context=trace.set_span_in_context(span))
        key = _key(headers)
        with self.lock:
            old = self.publishing.pop(key, None)
            self.publishing[key] = span
            while len(self.publishing) > MAX_OPEN_PUBLISHES:
                stale = self.publishing.popitem(last=False)[1]
                stale.end()
        if old is not None:
            old.end()

    def after_publish(self, headers: dict[str, Any] | None = None, **_: Any) -> None:
        if headers is None:
            return
        with self.lock:
            span = self.publishing.pop(_key(headers), None)
        if span is not None:
            span.end()

    # -- consumer -----------------------------------------------------------------------

    def prerun(self, sender: Any = None, task_id: str = "", task: Any = None, **_: Any) -> None:
        request = getattr(task, "request", None)
        headers = dict(getattr(request, "headers", None) or {})
        info = getattr(request, "delivery_info", None) or {}
        span = self.tracer.start_span(
            f"process {task.name}",
            context=propagate.extract(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation": "process",
                "messaging.operation.type": "process",
                "messaging.destination.name": str(info.get("queue") or ""),
                "messaging.message.id": task_id,
                "conveyor.task.name": task.name,
                "conveyor.task.retries": int(getattr(request, "retries", 0) or 0),
            },
        )
        token = None
        if not getattr(task, "is_async", False):  # an async task's run outlives this call
            token = otel_context.attach(trace.set_span_in_context(span))
        self.running[task_id] = (span, token)

    def postrun(
        self,
        task_id: str = "",
        retval: Any = None,
        state: str | None = None,
        **_: Any,
    ) -> None:
        entry = self.running.pop(task_id, None)
        if entry is None:
            return
        span, token = entry
        if state is not None:
            span.set_attribute("conveyor.task.state", state)
        if isinstance(retval, BaseException) and state in (states.FAILURE, states.RETRY):
            span.record_exception(retval)
        if state == states.FAILURE:
            description = f"{type(retval).__name__}: {retval}" if retval is not None else None
            span.set_status(Status(StatusCode.ERROR, description))
        span.end()
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]

    def connect(self) -> None:
        signals.before_task_publish.connect(self.before_publish, weak=False)
        signals.after_task_publish.connect(self.after_publish, weak=False)
        signals.task_prerun.connect(self.prerun, weak=False)
        signals.task_postrun.connect(self.postrun, weak=False)

    def disconnect(self) -> None:
        signals.before_task_publish.disconnect(self.before_publish)
        signals.after_task_publish.disconnect(self.after_publish)
        signals.task_prerun.disconnect(self.prerun)
        signals.task_postrun.disconnect(self.postrun)
        with self.lock:
            spans = list(self.publishing.values())
            self.publishing.clear()
        for span in spans:
            span.end()


def _key(headers: dict[str, Any]) -> tuple[str, int]:
    """One attempt's message: its task id and retries."""
    return str(headers.get("id")), int(headers.get("retries") or 0)


_active: _Instrumentation | None = None


def instrument(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace every publish and run in this process, for every app in it (signals are
    process-wide, like Celery's ``CeleryInstrumentor().instrument()``). ``tracer_provider``:
    the one to use, else OpenTelemetry's global one. Calling it again replaces the first."""
    global _active
    uninstrument()
    _active = _Instrumentation(tracer_provider)
    _active.connect()


def uninstrument() -> None:
    """Stop tracing; publishes under way have their spans ended."""
    global _active
    if _active is not None:
        _active.disconnect()
        _active = None


def is_instrumented() -> bool:
    return _active is not None
