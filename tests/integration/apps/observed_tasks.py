"""Tasks for the metrics and tracing tests (tests/integration/test_metrics.py, test_tracing.py).

The app takes its broker from CONVEYOR_BROKER_URL (a file of the test's own, or the
session's redis-server with a prefix of the test's own). With OBSERVED_SPANS set to a file,
the module traces this process (``conveyor.contrib.otel.instrument``) and writes every span
it ends to that file as one JSON line: the worker's children export what they run and
publish, and the test reads the file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from conveyor import Conveyor

BROKER_URL = os.environ.get("CONVEYOR_BROKER_URL", "")
if not BROKER_URL.startswith(("sqlite:////", "redis://")):
    raise RuntimeError(
        "observed_tasks needs CONVEYOR_BROKER_URL=sqlite:////absolute/path.db or redis://..."
    )

app = Conveyor("observed", broker=BROKER_URL, broker_lease=2)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def pid_of(i: int) -> int:
    """The pid of the process that ran it."""
    return os.getpid()


@app.task
def hold(gate: str) -> str:
    """Run until the file ``gate`` exists (30 s at most)."""
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return gate


@app.task
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(rate_limit="1/h")
def scarce(i: int) -> int:
    """One run an hour per worker: the second message in an hour is postponed."""
    return i


SPANS_FILE = os.environ.get("OBSERVED_SPANS")

if SPANS_FILE:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from conveyor.contrib import otel

    class JsonLinesExporter(SpanExporter):
        """Appends each span to a file as one JSON line (every process of the worker)."""

        def __init__(self, path: str) -> None:
            self.path = path

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            with open(self.path, "a", encoding="utf-8") as handle:
                for span in spans:
                    handle.write(json.dumps(_as_dict(span)) + "\n")
            return SpanExportResult.SUCCESS

    def _as_dict(span: ReadableSpan) -> dict[str, Any]:
        context = span.context
        assert context is not None
        return {
            "name": span.name,
            "kind": span.kind.name,
            "trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x"),
            "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
            "attributes": dict(span.attributes or {}),
            "status": span.status.status_code.name,
            "events": [event.name for event in span.events],
            "pid": os.getpid(),
        }

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(SPANS_FILE)))
    otel.instrument(tracer_provider=provider)
