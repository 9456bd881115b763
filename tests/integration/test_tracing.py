"""OpenTelemetry traces across processes: this test process publishes (its spans go to the
SDK's in-memory exporter), a real worker runs and publishes the continuation (its spans go
to a JSON-lines file, see apps/observed_tasks.py), and the spans form one trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .support import Workers, project_afresh, read_jsonl, wait_until, workers_for

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from conveyor import chain, signals
from conveyor.contrib import otel

APP = "observed_tasks:app"


@pytest.fixture
def observed(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    monkeypatch.delenv("OBSERVED_SPANS", raising=False)  # this process exports in memory
    with project_afresh("observed_tasks") as module:
        yield module


@pytest.fixture
def pool(
    request: pytest.FixtureRequest, tmp_path: Path, url: str, observed: ModuleType
) -> Iterator[Workers]:
    with workers_for(request, tmp_path, url) as workers:
        yield workers


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    """This process traced into the SDK's in-memory exporter (``provider.memory``)."""
    memory = InMemorySpanExporter()
    traced = TracerProvider()
    traced.add_span_processor(SimpleSpanProcessor(memory))
    traced.memory = memory  # type: ignore[attr-defined]
    otel.instrument(tracer_provider=traced)
    try:
        yield traced
    finally:
        otel.uninstrument()
    assert not signals.task_prerun.receivers and not signals.before_task_publish.receivers


def test_a_two_step_chain_is_one_trace_across_processes(
    pool: Workers, observed: ModuleType, provider: TracerProvider, tmp_path: Path
) -> None:
    spans_file = tmp_path / "worker-spans.jsonl"
    pool.start("-c", "2", env={"OBSERVED_SPANS": str(spans_file)}, app=APP)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("handle request") as request_span:
        result = chain(observed.add.s(1, 2), observed.add.s(10)).delay()
    assert result.get(timeout=20) == 13
    first_id, second_id = result.parent.id, result.id

    def worker_spans() -> list[dict[str, Any]]:
        found = read_jsonl(spans_file) if spans_file.exists() else []
        return found if sum(s["name"] == "process observed_tasks.add" for s in found) == 2 else []

    spans = wait_until(worker_spans, what="the worker's spans of both steps")
    trace_id = format(request_span.get_span_context().trace_id, "032x")
    assert {s["trace_id"] for s in spans} == {trace_id}
    here = {
        s.attributes["messaging.message.id"]: s
        for s in provider.memory.get_finished_spans()  # type: ignore[attr-defined]
        if s.name.startswith("publish")
    }
    sent = here[first_id]  # the first step, published by this process in the request
    assert sent.kind.name == "PRODUCER"
    assert sent.parent is not None
    assert sent.parent.span_id == request_span.get_span_context().span_id
    by_id = {(s["name"], s["attributes"]["messaging.message.id"]): s for s in spans}
    run_first = by_id[("process observed_tasks.add", first_id)]
    published = by_id[("publish observed_tasks.add", second_id)]  # the continuation
    run_second = by_id[("process observed_tasks.add", second_id)]
    assert run_first["parent_id"] == format(sent.context.span_id, "016x")
    assert published["parent_id"] == run_first["span_id"]
    assert run_second["parent_id"] == published["span_id"]
    assert (run_first["kind"], published["kind"]) == ("CONSUMER", "PRODUCER")
    for span in (run_first, published, run_second):
        assert span["attributes"]["messaging.system"] == "conveyor"
        assert span["attributes"]["messaging.destination.name"] == "default"
    assert run_first["attributes"]["messaging.operation"] == "process"
    assert published["attributes"]["messaging.operation"] == "publish"
    assert run_first["status"] == "UNSET"

    failing = observed.fail.delay("boom")
    with pytest.raises(ValueError):
        failing.get(timeout=20)

    def failed_span() -> dict[str, Any] | None:
        for span in read_jsonl(spans_file):
            if span["attributes"].get("messaging.message.id") == failing.id:
                return span
        return None

    failed = wait_until(failed_span, what="the failed run's span")
    assert failed["status"] == "ERROR"
    assert "exception" in failed["events"]
    assert failed["trace_id"] != trace_id  # sent outside the request: a trace of its own
