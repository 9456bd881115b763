"""Signature stamping and revocation by stamped header, as Celery 5.3+ has them."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from conveyor import Conveyor, Task, chain, chord, group, states
from conveyor.stamps import StampingVisitor
from conveyor.testing import memory_app, run_until_empty


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"stamps-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def t(app: Conveyor) -> SimpleNamespace:
    seen: list[tuple[str, dict[str, Any]]] = []

    @app.task(bind=True, name="st.add")
    def add(self: Task, x: int, y: int) -> int:  # type: ignore[type-arg]
        seen.append(("add", self.request.stamps))
        return x + y

    @app.task(bind=True, name="st.tsum")
    def tsum(self: Task, values: list[int]) -> int:  # type: ignore[type-arg]
        seen.append(("tsum", self.request.stamps))
        return sum(values)

    @app.task(bind=True, name="st.audit")
    def audit(self: Task, *args: Any) -> None:  # type: ignore[type-arg]
        seen.append(("audit", self.request.stamps))

    return SimpleNamespace(add=add, tsum=tsum, audit=audit, seen=seen)


def test_stamp_sets_options_and_reaches_the_task(app: Conveyor, t: SimpleNamespace) -> None:
    sig = t.add.s(2, 2).stamp(tenant="acme", batch="b-7")
    assert sig.options == {"tenant": "acme", "batch": "b-7", "stamped_headers": ["batch", "tenant"]}
    sig.delay()
    run_until_empty(app)
    assert t.seen == [("add", {"batch": "b-7", "tenant": "acme"})]


def test_a_stamped_canvas_stamps_every_task_and_its_links(
    app: Conveyor, t: SimpleNamespace
) -> None:
    flow = chain(t.add.s(1, 1), group(t.add.s(2), t.add.s(3)), t.tsum.s())
    flow.link(t.audit.si())
    flow.stamp(batch="nightly")
    result = flow.delay()
    run_until_empty(app)
    assert result.get(timeout=1) == 9
    assert sorted(name for name, _ in t.seen) == ["add", "add", "add", "audit", "tsum"]
    # As in Celery, the chain made its group and tsum one chord, and stamping without a
    # visitor leaves a chord's callback alone.
    assert [stamps for name, stamps in t.seen if name == "tsum"] == [{}]
    assert all(stamps == {"batch": "nightly"} for name, stamps in t.seen if name != "tsum")


def test_stamps_stay_with_the_task_they_were_put_on(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(t.add.s(1, 1).stamp(step="first"), t.add.s(1))
    result = flow.apply_async(headers={"correlation_id": "c-1"})
    run_until_empty(app)
    assert result.get(timeout=1) == 3
    assert t.seen == [("add", {"step": "first"}), ("add", {})]


def test_a_visitor_stamps_node_by_node_and_appends(app: Conveyor, t: SimpleNamespace) -> None:
    class ByTask(StampingVisitor):
        def on_signature(self, sig: Any, **headers: Any) -> dict[str, Any]:
            return {"task_name": sig.task}

    workflow = chord([t.add.s(1, 2)], t.tsum.s())
    workflow.stamp(ByTask(), source="import")
    sig = t.add.s(1, 1).stamp(label="a")
    sig.stamp(append_stamps=True, label="b")
    assert sig.options["label"] == ["b", "a"]
    assert workflow.delay()
    run_until_empty(app)
    assert t.seen == [
        ("add", {"source": "import", "task_name": "st.add"}),
        ("tsum", {"source": "import", "task_name": "st.tsum"}),
    ]


def test_revoke_by_stamped_headers(app: Conveyor, t: SimpleNamespace) -> None:
    doomed = [t.add.s(i, i).stamp(batch="b-7").delay() for i in range(3)]
    listed = t.add.s(5, 5).stamp(batch="b-9").delay()
    kept = t.add.s(1, 1).stamp(batch="b-8").delay()
    plain = t.add.delay(2, 2)
    app.control.revoke_by_stamped_headers({"batch": ["b-7", "b-9"]})
    run_until_empty(app)
    assert [r.state for r in doomed] == [states.REVOKED] * 3
    assert listed.state == states.REVOKED and "batch='b-9'" in str(listed.result)
    assert kept.get(timeout=1) == 2 and plain.get(timeout=1) == 4


def test_a_running_stamped_task_sees_it_is_aborted(app: Conveyor) -> None:
    checks: list[bool] = []

    @app.task(bind=True)
    def long_export(self: Task) -> None:  # type: ignore[type-arg]
        checks.append(self.is_aborted())
        self.app.control.revoke_by_stamped_headers(["export=weekly"])  # Celery's k=v form
        checks.append(self.is_aborted())

    long_export.s().stamp(export="weekly").delay()
    run_until_empty(app)
    assert checks == [False, True]


def test_before_task_publish_sees_the_stamps_by_name(app: Conveyor, t: SimpleNamespace) -> None:
    from conveyor.signals import before_task_publish

    published: list[dict[str, Any]] = []

    def record(headers: dict[str, Any], **_: Any) -> None:
        published.append(dict(headers))

    before_task_publish.connect(record, weak=False)
    try:
        t.add.s(1, 1).stamp(batch="b-1", tenant=["acme", "zeta"]).delay()
        t.add.delay(2, 2)
    finally:
        before_task_publish.disconnect(record)
    stamped, plain = published
    assert stamped["stamps"] == {"batch": "b-1", "tenant": ["acme", "zeta"]}
    assert stamped["stamped_headers"] == ["batch", "tenant"]
    assert plain["stamps"] == {}


def test_a_result_revokes_by_stamped_headers(app: Conveyor, t: SimpleNamespace) -> None:
    doomed = t.add.s(1, 1).stamp(monitoring_id="m-1")
    result = doomed.freeze()
    result.revoke_by_stamped_headers(headers={"monitoring_id": ["m-1"]})
    doomed.apply_async()
    other = t.add.s(2, 2).stamp(monitoring_id="m-2").delay()
    run_until_empty(app)
    assert result.state == states.REVOKED
    assert other.get(timeout=1) == 4


def test_revoke_by_stamped_headers_replies_as_celerys_workers(app: Conveyor) -> None:
    from conveyor.testing import worker_thread

    with worker_thread(app):
        deadline = time.monotonic() + 10
        while not app.control.ping() and time.monotonic() < deadline:
            pass  # the worker's first heartbeat registers it
        replies = app.control.revoke_by_stamped_headers(
            {"myheader": ["myvalue"]}, terminate=False, reply=True, timeout=5
        )
    assert replies == [
        {
            "testing@localhost": {
                "ok": "headers {'myheader': ['myvalue']} flagged as revoked, but not terminated"
            }
        }
    ]
    assert app.control.revoke_by_stamped_headers({"myheader": "other"}) is None
