"""Values no annotation types keep the types Celery's JSON serializer keeps (bytes,
datetime, date, time, UUID, Decimal), in arguments, results, progress meta and what a
workflow passes on; annotated values still take their annotation's type."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from conveyor import Conveyor, Task, chain
from conveyor.serialization import decode_message, tag_values
from conveyor.testing import memory_app, run_until_empty

WHEN = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
VALUES: list[Any] = [
    b"\x89PNG\r\n",  # not UTF-8: tagged as base64
    b"plain text",
    WHEN,
    date(2026, 3, 1),
    time(9, 30, 15),
    uuid.UUID("8d3c9f0e-2a6b-4c1d-9e8f-0a1b2c3d4e5f"),
    Decimal("19.99"),
]


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"json-{uuid.uuid4().hex[:6]}")


def test_unannotated_arguments_and_results_keep_their_types(app: Conveyor) -> None:
    @app.task
    def store_upload(blob, taken_at, day, at, owner, price, extra=None):  # type: ignore[no-untyped-def]
        return {"types": [type(v).__name__ for v in (blob, taken_at, day, at, owner, price)]}

    @app.task
    def echo(value):  # type: ignore[no-untyped-def]
        return value

    result = store_upload.delay(*VALUES[1:], extra=VALUES[0])
    echoed = echo.delay(VALUES)
    run_until_empty(app)
    assert result.get(timeout=1) == {
        "types": ["bytes", "datetime", "date", "time", "UUID", "Decimal"]
    }
    assert echoed.get(timeout=1) == VALUES


def test_any_and_loose_containers_keep_types_too(app: Conveyor) -> None:
    seen: dict[str, Any] = {}

    @app.task
    def record(event: dict[str, Any], tags: list[Any], raw: Any) -> None:
        seen.update(event=event, tags=tags, raw=raw)

    record.delay({"at": WHEN, "id": VALUES[5]}, [b"x", Decimal("1.5")], date(2026, 1, 2))
    run_until_empty(app)
    assert seen == {
        "event": {"at": WHEN, "id": VALUES[5]},
        "tags": [b"x", Decimal("1.5")],
        "raw": date(2026, 1, 2),
    }


def test_annotated_values_keep_using_their_annotation(app: Conveyor) -> None:
    seen: dict[str, Any] = {}

    @app.task
    def schedule(when: datetime, label: str, blob: bytes) -> None:
        seen.update(when=when, label=label, blob=blob)

    schedule.delay(WHEN, "weekly", b"\x00\x01")
    [delivery] = app.broker.reserve(["default"], 1, 30.0)
    assert b"__type__" not in delivery.body  # the annotation decides their wire form
    app.broker.nack(delivery)
    run_until_empty(app)
    assert seen == {"when": WHEN, "label": "weekly", "blob": b"\x00\x01"}


def test_send_task_by_name_to_an_annotated_parameter(app: Conveyor) -> None:
    seen: dict[str, Any] = {}

    @app.task(name="accounts.close")
    def close(account_id: str, closed_on: date) -> None:
        seen.update(account_id=account_id, closed_on=closed_on)

    sender = memory_app("sender")  # knows the task by name only
    sender._broker, sender._backend = app.broker, app.backend
    sender.send_task("accounts.close", (VALUES[5], date(2026, 2, 3)))
    run_until_empty(app)
    assert seen == {"account_id": str(VALUES[5]), "closed_on": date(2026, 2, 3)}


def test_progress_meta_and_workflow_values_keep_their_types(app: Conveyor) -> None:
    @app.task(bind=True)
    def export(self: Task) -> Any:  # type: ignore[type-arg]
        self.update_state(state="PROGRESS", meta={"since": WHEN, "done": Decimal("0.5")})
        return self.AsyncResult(self.request.id).info  # what a progress view reads

    @app.task
    def last_run():  # type: ignore[no-untyped-def]
        return WHEN

    @app.task
    def next_day(value):  # type: ignore[no-untyped-def]
        return value.date().replace(day=value.day + 1)

    progress = export.delay()
    flow = chain(last_run.s(), next_day.s()).delay()
    run_until_empty(app)
    assert progress.get(timeout=1) == {"since": WHEN, "done": Decimal("0.5")}
    assert flow.get(timeout=1) == date(2026, 3, 2)


def test_eager_runs_round_trip_the_same_way() -> None:
    app = memory_app("eager-json", task_always_eager=True)

    @app.task
    def echo(value):  # type: ignore[no-untyped-def]
        return value

    assert echo.delay(VALUES).get() == VALUES


def test_tags_are_celerys_and_plain_values_are_not_copied() -> None:
    plain = [1, "two", 3.0, None, True, {"k": [4, 5]}]
    assert tag_values(plain) is plain
    tagged = tag_values({"at": WHEN, "blob": b"\xff", "id": VALUES[5]})
    assert tagged == {
        "at": {"__type__": "datetime", "__value__": "2026-03-01T09:30:00+00:00"},
        "blob": {"__type__": "base64", "__value__": "/w=="},
        "id": {"__type__": "uuid", "__value__": {"hex": VALUES[5].hex, "version": 4}},
    }
    body = json.dumps({"id": "x", "task": "t", "args": [tagged]}).encode()
    assert decode_message(body).args == [{"at": WHEN, "blob": b"\xff", "id": VALUES[5]}]
