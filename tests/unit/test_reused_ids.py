"""A frozen signature sent in two workflows, as Celery's docs and tests do
(``fail_sig = fail.s(); fail_sig.freeze()``): its id runs in each, while a continuation
published twice within one workflow (its task before it ran twice) still runs once."""

from __future__ import annotations

import uuid

import pytest

from conveyor import Conveyor, Signature, chain, chord, signature
from conveyor.brokers.base import Envelope
from conveyor.testing import FakeClock, memory_app, run_until_empty


class Declined(Exception):
    pass


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"reused-{uuid.uuid4().hex[:6]}", clock=FakeClock(1_700_000_000.0))


@pytest.fixture
def calls(app: Conveyor) -> dict[str, int]:
    counted: dict[str, int] = {}

    @app.task(name="bill.fetch")
    def fetch(invoice: int) -> int:
        counted["fetch"] = counted.get("fetch", 0) + 1
        return invoice

    @app.task(name="bill.charge")
    def charge(invoice: int) -> int:
        counted["charge"] = counted.get("charge", 0) + 1
        return invoice * 10

    @app.task(name="bill.decline")
    def decline(*args: object) -> None:
        counted["decline"] = counted.get("decline", 0) + 1
        raise Declined("card declined")

    return counted


def sig(app: Conveyor, name: str, args: tuple[object, ...] = (), **options: object) -> Signature:
    return signature(name, args, app=app, **options)


def drain(app: Conveyor) -> None:
    run_until_empty(app, max_tasks=10_000)


def test_a_frozen_step_runs_in_each_chain_it_is_sent_in(app: Conveyor, calls) -> None:
    charge = sig(app, "bill.charge")
    charge_id = charge.freeze().id

    first = chain(sig(app, "bill.fetch", (1,)), charge).apply_async()
    drain(app)
    assert first.get(timeout=1) == 10
    second = chain(sig(app, "bill.fetch", (2,)), charge).apply_async()
    drain(app)

    assert second.id == charge_id
    assert second.get(timeout=1) == 20  # ran again in the second chain, as in Celery
    assert calls == {"fetch": 2, "charge": 2}


def test_a_frozen_failing_step_fails_each_chord_body_it_is_in(app: Conveyor, calls) -> None:
    decline = sig(app, "bill.decline")
    decline.freeze()
    body = chain(sig(app, "bill.fetch", (7,), immutable=True), decline)

    header_use = chord([body], sig(app, "bill.charge")).apply_async()
    drain(app)
    with pytest.raises(Declined):
        header_use.get(timeout=1)
    body_use = chord([sig(app, "bill.fetch", (8,))], body).apply_async()
    drain(app)
    with pytest.raises(Declined):
        body_use.get(timeout=1)
    assert calls["decline"] == 2


def test_a_step_published_twice_in_one_chain_still_runs_once(app: Conveyor, calls) -> None:
    published: list[Envelope] = []
    publish = app.broker.publish

    def keep(envelopes: list[Envelope]) -> None:
        published.extend(envelopes)
        publish(envelopes)

    app.broker.publish = keep  # type: ignore[method-assign]
    result = chain(sig(app, "bill.fetch", (3,)), sig(app, "bill.charge")).apply_async()
    drain(app)
    assert result.get(timeout=1) == 30
    first_step = next(e for e in published if e.id == result.parent.id)  # type: ignore[union-attr]

    publish([first_step])  # the first step's message comes again (its worker died)
    drain(app)

    assert calls == {"fetch": 2, "charge": 1}
