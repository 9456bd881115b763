"""Chains, groups and chords run by real worker processes on one SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conveyor import ChordError, GroupResult, chain, chord, group, states

from .support import DEFAULT_TIMEOUT, base_env, read_jsonl, wait_until
from .workflow_support import start_worker, wf

__all__ = ["wf"]

TIMEOUT = 30.0


def test_chain_of_ten(wf, workers):
    start_worker(workers)
    result = chain(wf.add.s(0, 1), *[wf.add.s(1) for _ in range(9)]).apply_async()

    assert result.get(timeout=TIMEOUT) == 10
    values = []
    node = result
    while node is not None:
        values.append(node.get(timeout=TIMEOUT))
        node = node.parent
    assert values == list(range(10, 0, -1))


def test_group_of_a_thousand_keeps_order(wf, workers):
    start_worker(workers, "-c", "2")
    result = group(wf.identity.s(i) for i in range(1000)).apply_async()

    assert result.get(timeout=TIMEOUT) == list(range(1000))
    assert result.completed_count() == 1000 and result.successful()


def test_chord_of_a_thousand_adds_up(wf, workers):
    start_worker(workers, "-c", "2")
    result = chord((wf.add.s(i, i) for i in range(1000)), wf.tsum.s()).apply_async()

    assert result.get(timeout=TIMEOUT) == 2 * sum(range(1000))
    assert result.parent.get(timeout=TIMEOUT) == [2 * i for i in range(1000)]


def test_chord_with_a_failing_member(wf, workers, workdir):
    log = str(workdir / "errors.jsonl")
    start_worker(workers)
    header = [wf.add.s(1, 1), wf.fail.s("card-1"), wf.add.s(2, 2)]
    result = chord(header, wf.callback_ran.s(log)).apply_async(link_error=wf.record_error.s(log))

    with pytest.raises(wf.Declined, match="card-1"):  # the member's own error, as in Celery
        result.get(timeout=TIMEOUT)
    stored = result.get(timeout=TIMEOUT, propagate=False)  # what the callback's id holds
    failed = result.parent.results[1].id
    assert isinstance(stored, ChordError)
    assert failed in str(stored) and "wf.fail" in str(stored) and "Declined" in str(stored)
    assert result.state == states.FAILURE
    errbacks = wait_until(lambda: [e for e in read_jsonl(log) if e["kind"] == "errback"])
    assert errbacks == [{"kind": "errback", "failed": result.id}]
    assert not [e for e in read_jsonl(log) if e["kind"] == "callback"]  # never ran


def test_failing_chain_runs_both_kinds_of_errback(wf, workers, workdir):
    log = str(workdir / "errors.jsonl")
    start_worker(workers)
    flow = chain(wf.add.s(1, 1), wf.fail.s(), wf.add.s(5))
    flow.link_error(wf.record_error.s(log))
    flow.link_error(wf.error_handler.s(log))
    result = flow.apply_async()

    with pytest.raises(Exception, match="declined") as caught:
        result.get(timeout=TIMEOUT)
    assert type(caught.value).__name__ == "Declined"
    failed = result.parent.id
    seen = wait_until(lambda: len(read_jsonl(log)) >= 2 and read_jsonl(log))
    assert {e["kind"] for e in seen} == {"errback", "handler"}
    assert all(e["failed"] == failed for e in seen)
    assert next(e for e in seen if e["kind"] == "handler")["error"].startswith("Declined")


def test_nested_workflows(wf, workers):
    start_worker(workers, "-c", "2")
    add, mul, tsum, identity = wf.add, wf.mul, wf.tsum, wf.identity
    flows = {
        "group then task is a chord": (
            chain(add.s(1, 1), group(add.s(i) for i in range(3)), tsum.s()),
            2 + 3 + 4,
        ),
        "chord inside a chain": (
            chain(add.s(1, 1), chord([add.s(10), add.s(20)], tsum.s()), mul.s(2)),
            68,
        ),
        "chain of chords": (
            chain(
                chord([add.s(1, 1), add.s(2, 2)], tsum.s()),
                chord([add.s(1), add.s(2)], tsum.s()),
                chord([mul.s(2), mul.s(3)], tsum.s()),
            ),
            75,
        ),
        "chord header of chains, groups and a chord": (
            chord(
                [
                    chain(add.s(1, 1), mul.s(10)),
                    group(add.s(1, 0), add.s(2, 0)),
                    chord([add.s(5, 5), add.s(6, 6)], tsum.s()),
                ],
                identity.s(),
            ),
            [20, 1, 2, 22],
        ),
        "group of chords": (
            group(chord([add.s(i, j) for j in range(3)], tsum.s()) for i in range(4)),
            [3, 6, 9, 12],
        ),
        "group of chains": (group(chain(add.s(i, i), mul.s(10)) for i in range(3)), [0, 20, 40]),
        "nested groups flatten": (group(group(add.s(1, 1), add.s(2, 2)), add.s(3, 3)), [2, 4, 6]),
        "chord of chords, then a chain": (
            chain(
                chord([chord([add.s(i, 1), add.s(i, 2)], tsum.s()) for i in range(3)], tsum.s()),
                add.s(1000),
            ),
            1015,
        ),
        "group then group": (
            chain(group(add.s(1, 1), add.s(2, 2)), group(tsum.s(), identity.s())),
            [6, [2, 4]],
        ),
    }
    results = {name: flow.apply_async() for name, (flow, _) in flows.items()}
    for name, (_, expected) in flows.items():
        assert results[name].get(timeout=TIMEOUT) == expected, name


def test_root_parent_and_group_ids(wf, workers):
    start_worker(workers)
    flow = chain(wf.who.s(1), group(wf.who.s(), wf.who.s()), wf.identity.s())
    result = flow.apply_async(headers={"correlation_id": "corr-7"})

    pair = result.get(timeout=TIMEOUT)
    groupres = result.parent
    first = groupres.parent
    root = first.get(timeout=TIMEOUT)
    assert root["id"] == first.id and root["root_id"] == first.id
    assert root["parent_id"] is None and root["correlation_id"] == "corr-7"
    assert [member["id"] for member in pair] == [r.id for r in groupres.results]
    for member in pair:
        assert member["value"] == root
        assert member["root_id"] == first.id and member["parent_id"] == first.id
        assert member["group_id"] == groupres.id
        assert member["correlation_id"] == "corr-7"


def test_seeds_order_workflow_with_headers(wf, workers, workdir):
    log = str(workdir / "order.jsonl")
    start_worker(workers)
    order_id, item_ids = 42, [1, 2, 3, 4]
    workflow = chain(
        wf.validate_order.s(order_id, log),
        chord(
            [wf.process_item.s(item_id, log) for item_id in item_ids],
            wf.finalize_order.s(order_id, log),
        ),
        wf.send_confirmation.s(log),
    )
    result = workflow.apply_async(headers={"correlation_id": "abc-123"})

    assert result.get(timeout=TIMEOUT) == "order 42: 4 items, 100"
    steps = read_jsonl(log)
    assert [s["step"] for s in steps].count("item") == 4 and len(steps) == 7
    assert {s["correlation_id"] for s in steps} == {"abc-123"}


def test_seeds_chunked_chord(wf, workers):
    start_worker(workers)
    all_ids = list(range(1050))
    parts = [all_ids[i : i + 100] for i in range(0, len(all_ids), 100)]
    result = chord([wf.process_chunk.s(part) for part in parts], wf.aggregate_results.s()).delay()
    assert result.get(timeout=TIMEOUT) == 1050

    chunked = wf.add.chunks([(i, i) for i in range(20)], 6).apply_async()
    assert chunked.get(timeout=TIMEOUT) == [
        [0, 2, 4, 6, 8, 10],
        [12, 14, 16, 18, 20, 22],
        [24, 26, 28, 30, 32, 34],
        [36, 38],
    ]
    assert wf.mul.starmap([(2, 3), (4, 5)]).delay().get(timeout=TIMEOUT) == [6, 20]


def test_replace_in_a_chain_and_a_chord(wf, workers):
    start_worker(workers)
    in_chain = chain(wf.add.s(1, 1), wf.replacer.s(), wf.mul.s(2)).apply_async()
    in_chord = chord([wf.replacer.s(1), wf.fan_out.s(3)], wf.identity.s()).apply_async()

    assert in_chain.get(timeout=TIMEOUT) == 204
    assert in_chain.parent.get(timeout=TIMEOUT) == 102  # the replaced id has the result
    assert in_chord.get(timeout=TIMEOUT) == [101, [0, 1, 4]]


def test_results_fetched_by_id_from_another_process(wf, workers, broker_url):
    start_worker(workers)
    flow = chain(wf.add.s(2, 2), chord([wf.add.s(1), wf.add.s(2)], wf.tsum.s()))
    result = flow.apply_async()
    batch = group(wf.add.s(i, 1) for i in range(5)).apply_async()
    result.get(timeout=TIMEOUT)
    batch.get(timeout=TIMEOUT)
    script = f"""
import json
from conveyor import AsyncResult, Conveyor, GroupResult
app = Conveyor("elsewhere", broker={broker_url!r})
print(json.dumps({{
    "chain": AsyncResult({result.id!r}, app=app).get(timeout=10),
    "header": GroupResult.restore({result.parent.id!r}, app=app).get(timeout=10),
    "group": GroupResult.restore({batch.id!r}, app=app).get(timeout=10),
}}))
"""
    run = subprocess.run(
        [sys.executable, "-c", script],
        env=base_env(broker_url),
        capture_output=True,
        text=True,
        timeout=DEFAULT_TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"chain": 11, "header": [5, 6], "group": [1, 2, 3, 4, 5]}


def test_group_result_restore_after_save(wf, workers):
    start_worker(workers)
    members = [wf.add.delay(i, i) for i in range(3)]
    saved = GroupResult(results=members, app=wf.app).save()
    restored = GroupResult.restore(saved.id, app=wf.app)
    assert restored is not None and restored.get(timeout=TIMEOUT) == [0, 2, 4]
