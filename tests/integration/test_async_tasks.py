"""``async def`` tasks in real workers (issue 18), on SQLite and on Redis: they interleave on
each process's event loop, see their own ``self.request``, retry, meet their time limits,
are cancelled by revoke with terminate, and share a process with ``def`` tasks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from conveyor import AsyncResult, SoftTimeLimitExceeded, TimeLimitExceeded, states

from .support import Workers, project_on, read_jsonl, wait_until, workers_for

APP = "async_tasks:app"
POOLS = pytest.mark.parametrize("pool", ["prefork", "asyncio"])
"""The default pool hands coroutines to a loop thread; ``-P asyncio`` runs the loop on its
consumer's thread (aio.py): what the user sees must be the same."""


@pytest.fixture
def at(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The async tasks module (apps/async_tasks.py), imported afresh on ``url``."""
    with project_on(url, "async_tasks", monkeypatch) as module:
        yield module


@pytest.fixture
def aw(
    request: pytest.FixtureRequest, tmp_path: Path, url: str, at: ModuleType
) -> Iterator[Workers]:
    with workers_for(request, tmp_path, url) as workers:
        yield workers


@POOLS
def test_fifty_sleeps_interleave_in_one_process_each_with_its_own_request(
    at: ModuleType, aw: Workers, pool: str
) -> None:
    worker = aw.start("-c", "1", "-P", pool, app=APP)
    sent = time.monotonic()
    results = [at.nap.delay(1.0) for _ in range(50)]
    answers = [r.get(timeout=20) for r in results]
    elapsed = time.monotonic() - sent
    assert [task_id for task_id, _ in answers] == [r.id for r in results]  # per coroutine
    assert {pid for _, pid in answers} == set(worker.children())  # one process ran them all
    assert elapsed < 6.0, f"50 one-second sleeps took {elapsed:.1f}s: they did not interleave"


def test_typed_arguments_and_results_class_based_and_shared_tasks(
    at: ModuleType, aw: Workers
) -> None:
    aw.start(app=APP)
    page = at.fetch.delay("https://example.com").get(timeout=10)
    assert page == at.Page(url="https://example.com", size=19)
    assert at.measure.delay(page).get(timeout=10) == 190
    assert at.poll.delay(3).get(timeout=10) == 3
    assert at.shared_double.delay(21).get(timeout=10) == 42


@POOLS
def test_a_quick_coroutine_alone_on_its_worker_is_stored_as_any_task_is(
    at: ModuleType, aw: Workers, pool: str
) -> None:
    """Its success, children and typed-result check are those of the usual path, though
    the loop thread stores it (the consumer is waiting for it)."""
    aw.start("-c", "1", "-P", pool, app=APP)
    for _ in range(3):
        parent = at.quick_parent.delay()
        assert parent.get(timeout=10) == parent.id
        [child] = parent.children
        assert child.get(timeout=10) == 10
        assert at.app.AsyncResult(child.id).parent.id == parent.id
        assert parent.state == states.SUCCESS
    wrong = at.wrong_type.delay()
    with pytest.raises(Exception, match="not a number|int"):
        wrong.get(timeout=10)
    assert wrong.state == states.FAILURE
    assert at.fetch.delay("https://example.com").get(timeout=10) == at.Page(
        url="https://example.com", size=19
    )


@POOLS
def test_a_coroutine_sees_its_own_task_loop_and_context_from_its_first_step(
    at: ModuleType, aw: Workers, pool: str
) -> None:
    """``-P asyncio`` runs a coroutine's first step as it starts (aio.EagerLoop): before
    its first wait it must see what it sees after it, as on a loop thread."""
    aw.start("-c", "1", "-P", pool, app=APP)
    for _ in range(3):
        result = at.first_steps.delay()
        assert result.get(timeout=10) == {
            "leaked": "",
            "name": f"async_tasks.first_steps[{result.id}]",
            "running": True,
            "same_task": True,
            "same_loop": True,
            "kept": True,
        }


def test_retry_and_autoretry(at: ModuleType, aw: Workers) -> None:
    aw.start(app=APP)
    flaky, retried = at.flaky.delay(2), at.retry_once.delay()
    assert flaky.get(timeout=15) == 2
    assert flaky.retries == 2
    assert retried.get(timeout=15) == "retried 1"


def test_update_state_is_seen_while_the_coroutine_runs(at: ModuleType, aw: Workers) -> None:
    aw.start(app=APP)
    result = at.progress.delay(40)
    info = wait_until(lambda: result.state == "PROGRESS" and result.info, what="PROGRESS")
    assert info["total"] == 40
    assert result.get(timeout=15) == 40


@POOLS
def test_soft_limit_raises_inside_the_coroutine_and_hard_limit_cancels_it(
    at: ModuleType, aw: Workers, pool: str, tmp_path: Path
) -> None:
    worker = aw.start("-P", pool, app=APP)
    child = worker.children()
    soft_log, hard_log = str(tmp_path / "soft.jsonl"), str(tmp_path / "hard.jsonl")
    soft, hard, bystander = (
        at.soft_limited.delay(soft_log),
        at.hard_limited.delay(hard_log),
        at.nap.delay(1.5),
    )
    assert soft.get(timeout=15) == "cleaned up"
    assert [e["event"] for e in read_jsonl(soft_log)] == ["cleanup"]
    with pytest.raises(TimeLimitExceeded):
        hard.get(timeout=15)
    assert [e["event"] for e in read_jsonl(hard_log)] == ["cancelled"]  # its finally ran
    bystander.get(timeout=15)  # the other coroutine of the process was not disturbed
    assert worker.children() == child  # cancelled in time: the process was not replaced


def test_soft_limit_of_an_uncaught_wait_fails_the_task(at: ModuleType, aw: Workers) -> None:
    aw.start(app=APP)
    result = at.nap.apply_async((30,), soft_time_limit=0.3)
    with pytest.raises(SoftTimeLimitExceeded):
        result.get(timeout=15)


@POOLS
def test_revoke_with_terminate_cancels_only_that_coroutine(
    at: ModuleType, aw: Workers, pool: str, tmp_path: Path
) -> None:
    worker = aw.start("-P", pool, app=APP)
    child = worker.children()
    path = str(tmp_path / "long.jsonl")
    doomed, bystander = at.long_wait.delay(path), at.nap.delay(2.0)
    wait_until(lambda: doomed.state == states.STARTED, what="the coroutine to start")
    doomed.revoke(terminate=True)
    wait_until(lambda: len(read_jsonl(path)) == 2, what="the coroutine to be cancelled")
    assert [e["event"] for e in read_jsonl(path)] == ["start", "cancelled"]
    wait_until(lambda: doomed.state == states.REVOKED, what="REVOKED")
    bystander.get(timeout=15)
    assert worker.children() == child


def test_revoke_by_stamped_headers_with_terminate_cancels_a_stamped_coroutine(
    at: ModuleType, aw: Workers, tmp_path: Path
) -> None:
    aw.start(app=APP)
    path = str(tmp_path / "long.jsonl")
    doomed = at.long_wait.s(path).stamp(tenant="acme").delay()
    other = at.long_wait.s(str(tmp_path / "other.jsonl")).stamp(tenant="globex").delay()
    wait_until(lambda: doomed.state == other.state == states.STARTED, what="both to start")
    at.app.control.revoke_by_stamped_headers({"tenant": "acme"}, terminate=True)
    wait_until(lambda: len(read_jsonl(path)) == 2, what="the stamped coroutine to be cancelled")
    assert [e["event"] for e in read_jsonl(path)] == ["start", "cancelled"]
    wait_until(lambda: doomed.state == states.REVOKED, what="REVOKED")
    assert other.state == states.STARTED  # another stamp's task runs on
    other.revoke(terminate=True)


def test_a_coroutine_that_ends_while_a_def_task_runs_is_stored_at_once(
    at: ModuleType, aw: Workers, url: str
) -> None:
    """The consumer runs the def task; the loop's thread stores the coroutine's success
    (its ack waits for the consumer). Not under ``--pool asyncio``, where the def task
    holds the loop (docs/async.md)."""
    if not url.startswith("redis"):
        pytest.skip("the loop's thread stores it the same way on every broker")
    aw.start("-c", "1", app=APP)
    napping = at.nap.delay(0.5)
    blocking = at.sync_sleep.delay(6.0)
    wait_until(lambda: blocking.state == states.STARTED, what="the def task to start")
    assert napping.get(timeout=4)[0] == napping.id
    assert blocking.state == states.STARTED  # it still runs
    assert blocking.get(timeout=15)


def test_a_def_task_terminated_beside_running_coroutines_stops_alone(
    at: ModuleType, aw: Workers, url: str
) -> None:
    """The terminate signal names the def task (``SlotTable.aim``), so the consumer stops
    it though coroutines are in flight, and their process goes on: no kill 5 s later."""
    if not url.startswith("sqlite"):
        pytest.skip("the child's notices do not depend on the broker")
    worker = aw.start("-c", "1", app=APP)
    [pid] = worker.children()
    napping = at.nap.delay(3.0)
    wait_until(lambda: napping.state == states.STARTED, what="the coroutine to start")
    blocking = at.sync_sleep.delay(30.0)
    wait_until(lambda: blocking.state == states.STARTED, what="the def task to start")
    blocking.revoke(terminate=True)
    wait_until(lambda: blocking.state == states.REVOKED, timeout=4.0, what="REVOKED")
    assert napping.get(timeout=10) == [napping.id, pid]
    assert worker.children() == [pid]  # never replaced
    assert "killing child" not in worker.log(), worker.log()


def terminate_beside_a_def_task(
    at: ModuleType, tmp_path: Path, seconds: float
) -> tuple[AsyncResult, AsyncResult]:
    """A coroutine starts, then a def task of ``seconds`` in the same consumer; the
    coroutine is revoked with terminate and seen cancelled. Both results."""
    path = str(tmp_path / "long.jsonl")
    doomed = at.long_wait.delay(path)
    wait_until(lambda: doomed.state == states.STARTED, what="the coroutine to start")
    blocking = at.sync_sleep.delay(seconds)
    wait_until(lambda: blocking.state == states.STARTED, what="the def task to start")
    doomed.revoke(terminate=True)
    wait_until(lambda: len(read_jsonl(path)) == 2, what="the coroutine to be cancelled")
    return doomed, blocking


@POOLS
def test_terminating_a_coroutine_leaves_the_def_task_of_its_process_alone(
    at: ModuleType, aw: Workers, pool: str, tmp_path: Path
) -> None:
    aw.start("-c", "1", "-P", pool, app=APP)
    doomed, blocking = terminate_beside_a_def_task(at, tmp_path, 2.0)
    wait_until(lambda: doomed.state == states.REVOKED, what="REVOKED")
    assert blocking.get(timeout=15)  # the terminate signal was not taken as meant for it
    assert blocking.state == states.SUCCESS


@POOLS
def test_a_quick_coroutine_with_a_time_limit_is_not_killed_while_a_def_task_runs_after_it(
    at: ModuleType, aw: Workers, pool: str, url: str
) -> None:
    """A coroutine with a hard limit ends at once; the def task reserved with it then runs
    past that limit and its grace. The coroutine's outcome waits for the consumer, which
    runs the def task, but the supervisor heard that it ended: nothing is killed."""
    if (pool == "prefork") != url.startswith("sqlite"):
        pytest.skip("the child's notices do not depend on the broker: one broker a pool")
    quick = at.limited_quick.delay()
    blocking = at.sync_sleep.delay(4.5)  # past 0.5 s + the 3 s grace
    worker = aw.start("-c", "1", "-P", pool, app=APP)  # both in its first batch
    assert blocking.get(timeout=20) in worker.children()  # its process was never replaced
    assert quick.get(timeout=5) == "in time"
    assert "hard time limit" not in worker.log(), worker.log()


def test_a_coroutine_terminated_beside_a_long_def_task_does_not_take_it_down(
    at: ModuleType, aw: Workers, url: str, tmp_path: Path
) -> None:
    """The loop cancels the coroutine at once, but its outcome waits for the def task (6 s,
    past the 5 s a terminated task has to end): the supervisor hears that it ended and
    does not kill the process for it. Not under ``--pool asyncio``, whose def task holds
    the loop, so nothing is cancelled before it returns (docs/async.md)."""
    if not url.startswith("sqlite"):
        pytest.skip("the child's notices do not depend on the broker")
    worker = aw.start("-c", "1", app=APP)
    doomed, blocking = terminate_beside_a_def_task(at, tmp_path, 6.0)
    assert blocking.get(timeout=20) in worker.children()  # its process was never replaced
    assert doomed.state == states.REVOKED
    log = worker.log()
    assert "killing child" not in log and "died while running" not in log, log
    assert log.count("terminating ") <= 1, log  # one signal at most, not one every 0.5 s


def test_threads_pool_lets_the_loop_cancel_a_terminated_coroutine_without_a_warning(
    at: ModuleType, aw: Workers, tmp_path: Path
) -> None:
    """-P threads cannot stop a def task (it says so), but a coroutine is cancelled by its
    loop: no "cannot stop it" for one, even while it takes time to end."""
    worker = aw.start("-P", "threads", app=APP)
    path = str(tmp_path / "slow.jsonl")
    doomed = at.slow_to_cancel.delay(path)
    wait_until(lambda: doomed.state == states.STARTED, what="the coroutine to start")
    doomed.revoke(terminate=True)
    wait_until(lambda: len(read_jsonl(path)) == 2, what="the coroutine to be cancelled")
    wait_until(lambda: doomed.state == states.REVOKED, what="REVOKED")
    assert "cannot stop it" not in worker.log(), worker.log()


@POOLS
def test_def_and_async_def_tasks_share_a_process(at: ModuleType, aw: Workers, pool: str) -> None:
    worker = aw.start("-c", "1", "-P", pool, app=APP)
    sent = time.monotonic()
    naps = [at.nap.delay(1.0) for _ in range(10)]
    blocking = at.sync_sleep.delay(1.0)
    more = [at.nap.delay(1.0) for _ in range(10)]
    pids = {pid for _, pid in (r.get(timeout=20) for r in naps + more)}
    assert pids == {blocking.get(timeout=20)} == set(worker.children())
    elapsed = time.monotonic() - sent
    assert elapsed < 6.0, f"{elapsed:.1f}s: the sleeps did not overlap the def task"


def test_async_pool_keeps_to_its_async_concurrency(
    at: ModuleType, aw: Workers, tmp_path: Path
) -> None:
    worker = aw.start("-P", "asyncio", "--async-concurrency", "3", app=APP)
    assert "pool:        asyncio x 1" in worker.log()
    path = str(tmp_path / "spans.jsonl")
    for r in [at.span.delay(path, 0.4) for _ in range(9)]:
        r.get(timeout=20)
    events = sorted(read_jsonl(path), key=lambda e: (e["at"], e["event"] == "start"))
    running = peak = 0
    for event in events:
        running += 1 if event["event"] == "start" else -1
        peak = max(peak, running)
    assert peak == 3


@POOLS
def test_a_coroutine_that_blocks_the_loop_is_named_and_its_process_replaced(
    at: ModuleType, aw: Workers, pool: str, url: str
) -> None:
    if not url.startswith("sqlite"):
        pytest.skip("the process is replaced the same way on every broker")
    worker = aw.start("-P", pool, app=APP)
    child = worker.children()
    result = at.blocks_loop.delay(6.0)  # hard limit 0.5 s; cancellation cannot reach it
    worker.wait_for_log("async_tasks.blocks_loop[" + result.id + "] has not yielded")
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=15)
    wait_until(lambda: worker.children() and worker.children() != child, what="a new child")


@POOLS
def test_warm_shutdown_lets_running_coroutines_finish(
    at: ModuleType, aw: Workers, pool: str
) -> None:
    worker = aw.start("-P", pool, app=APP)
    results = [at.nap.delay(1.0) for _ in range(5)]
    wait_until(lambda: all(r.state == states.STARTED for r in results), what="STARTED")
    worker.signal(15)
    assert worker.wait() == 0
    assert all(r.state == states.SUCCESS for r in results)


@pytest.mark.parametrize(
    ("pool", "thread"), [("prefork", "conveyor-asyncio"), ("asyncio", "MainThread")]
)
def test_the_asyncio_pool_runs_coroutines_on_its_consumers_own_thread(
    at: ModuleType, aw: Workers, pool: str, thread: str
) -> None:
    """-P asyncio: no loop thread, so no hand-off between a message and its coroutine."""
    aw.start("-c", "1", "-P", pool, app=APP)
    assert at.loop_thread.delay().get(timeout=10) == thread


@POOLS
def test_a_coroutine_of_a_killed_worker_runs_again_on_the_next(
    at: ModuleType, aw: Workers, pool: str
) -> None:
    first = aw.start("-c", "1", "-P", pool, app=APP)
    result = at.nap.delay(1.0)
    wait_until(lambda: result.state == states.STARTED, what="the coroutine to start")
    first.kill_group()  # supervisor and child at once, as the OOM killer would
    second = aw.start("-c", "1", "-P", pool, app=APP)
    task_id, pid = result.get(timeout=20)
    assert task_id == result.id
    assert [pid] == second.children()
    assert result.state == states.SUCCESS


@POOLS
def test_a_def_task_runs_its_own_event_loop_beside_the_workers(
    at: ModuleType, aw: Workers, pool: str
) -> None:
    aw.start("-c", "1", "-P", pool, app=APP)
    naps = [at.nap.delay(0.2) for _ in range(3)]
    assert at.sync_with_its_own_loop.delay(21).get(timeout=10) == 42
    assert [r.get(timeout=10)[0] for r in naps] == [r.id for r in naps]
    assert at.sync_with_its_own_loop.delay(4).get(timeout=10) == 8
