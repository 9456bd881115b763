"""The async client against real ``conveyor worker`` processes, on SQLite and on Redis:
sends and waits from coroutines (``adelay``, ``aapply_async``, ``asend_task``, ``aget``,
``await result``, ``astate``...), timeouts and failures, workflows, and the error a
blocking ``get()`` raises inside a running event loop.

Each test runs its coroutine with ``asyncio.run`` (no pytest plugin needed).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from conveyor import Conveyor, chain, chord, group
from conveyor.exceptions import BlockingCallError, BrokerError, TimeoutError
from conveyor.result import AsyncResult, GroupResult
from redis_server import free_port

from .support import Ticker, Workers, project_afresh, project_on, workers_for

T = TypeVar("T")

APP = "aio_client_tasks:app"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a test's coroutine; a bug that hangs fails after 30 s instead of never."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, 30)

    return asyncio.run(bounded())


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conveyor.db'}"
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    return f"{redis_url}?prefix={prefix}"


@pytest.fixture
def tasks(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with project_on(url, "aio_client_tasks", monkeypatch) as module:
        yield module


@pytest.fixture
def workers(request: pytest.FixtureRequest, tmp_path: Path, url: str) -> Iterator[Workers]:
    with workers_for(request, tmp_path, url) as pool:
        yield pool


@pytest.fixture
def worker(workers: Workers, tasks: ModuleType) -> Any:
    return workers.start("-c", "2", app=APP)


def test_asend_task_then_aget_and_await_give_the_value(tasks: ModuleType, worker: Any) -> None:
    app = tasks.app

    async def main() -> tuple[Any, ...]:
        result = await app.asend_task("aio_client_tasks.add", (2, 3))
        value = await result.aget(timeout=10)
        again = await (await app.asend_task("aio_client_tasks.add", (4, 5)))
        return result, value, again

    result, value, again = run(main())
    assert isinstance(result, AsyncResult)
    assert (value, again) == (5, 9)
    assert result.state == "SUCCESS"  # the same task, read the sync way


def test_adelay_and_aapply_async_send_the_task(tasks: ModuleType, worker: Any) -> None:
    add = tasks.add

    async def main() -> tuple[Any, ...]:
        first = await add.adelay(2, 3)
        second = await add.aapply_async((10,), {"y": 5}, task_id="chosen-id", priority=7)
        return first, await first.aget(timeout=10), second.id, await second

    first, value, chosen, other = run(main())
    assert isinstance(first, AsyncResult) and first.name == "aio_client_tasks.add"
    assert (value, chosen, other) == (5, "chosen-id", 15)


def test_sends_that_touch_more_stores_go_through_a_thread(tasks: ModuleType, worker: Any) -> None:
    """An idempotency key (claimed in the coordinator) and callbacks (a workflow)."""
    add = tasks.add

    async def main() -> tuple[Any, ...]:
        first = await add.aapply_async((1, 1), idempotency_key="order-1")
        again = await add.aapply_async((1, 1), idempotency_key="order-1")
        linked = await add.aapply_async((2, 2), link=add.s(10))
        return first.id, again.id, await first.aget(timeout=10), await linked.aget(timeout=10)

    first, again, value, linked = run(main())
    assert first == again, "sent once: the second send gives the first one's id"
    assert (value, linked) == (2, 4)


def test_aapply_async_checks_arguments_as_apply_async_does(tasks: ModuleType) -> None:
    add = tasks.add
    with pytest.raises(TypeError):
        run(add.aapply_async((1, 2, 3)))
    with pytest.raises(Exception, match="countdwn"):
        run(add.aapply_async((1, 2), countdwn=5))


def test_eager_mode_runs_the_task_off_the_event_loop(tasks: ModuleType) -> None:
    app, add, fail = tasks.app, tasks.add, tasks.fail
    app.conf.task_always_eager = True

    async def main() -> tuple[Any, ...]:
        result = await add.adelay(2, 2)
        failed = await fail.adelay("eager broke")
        with pytest.raises(ValueError, match="eager broke"):
            await failed.aget()
        return await result.aget(), await result, await result.astate(), await failed.astate()

    assert run(main()) == (4, 4, "SUCCESS", "FAILURE")


def test_an_async_def_task_is_sent_and_awaited(tasks: ModuleType, worker: Any) -> None:
    async def main() -> Any:
        return await (await tasks.amul.adelay(6, 7)).aget(timeout=10)

    assert run(main()) == 42


def test_eager_mode_runs_an_async_def_task_inside_a_running_loop(tasks: ModuleType) -> None:
    tasks.app.conf.task_always_eager = True

    async def main() -> Any:
        return await (await tasks.amul.adelay(3, 5))

    assert run(main()) == 15


def test_astate_and_friends_follow_a_task_from_start_to_end(
    tasks: ModuleType, worker: Any, tmp_path: Path
) -> None:
    app = tasks.app
    gate = tmp_path / "gate"

    async def main() -> list[Any]:
        result = await app.asend_task("aio_client_tasks.wait_for", (str(gate),))
        seen = []
        while (state := await result.astate()) != "PROGRESS":
            assert state in ("PENDING", "RECEIVED", "STARTED"), state
            await asyncio.sleep(0.01)
        seen += [await result.aready(), await result.ainfo()]
        gate.touch()
        seen.append(await result.aget(timeout=10))
        seen += [
            await result.astate(),
            await result.aready(),
            await result.asuccessful(),
            await result.afailed(),
            await result.aresult(),
        ]
        return seen

    assert run(main()) == [
        False,
        {"waiting": str(gate)},
        "opened",
        "SUCCESS",
        True,
        True,
        False,
        "opened",
    ]


def test_astate_tells_pending_from_unknown(tasks: ModuleType, worker: Any) -> None:
    app = tasks.app

    async def main() -> tuple[str, str]:
        queued = await app.asend_task("aio_client_tasks.add", (1, 1), queue="nobody-consumes")
        return await queued.astate(), await app.AsyncResult("never-sent").astate()

    assert run(main()) == ("PENDING", "UNKNOWN")


def test_a_failed_task_raises_its_exception_from_aget(tasks: ModuleType, worker: Any) -> None:
    app = tasks.app

    async def main() -> tuple[Any, ...]:
        result = await app.asend_task("aio_client_tasks.fail", ("bad input",))
        with pytest.raises(ValueError, match="bad input"):
            await result.aget(timeout=10)
        with pytest.raises(ValueError, match="bad input"):
            await result
        kept = await result.aget(timeout=10, propagate=False)
        return kept, await result.afailed(), await result.astate(), await result.aresult()

    kept, failed, state, stored = run(main())
    assert isinstance(kept, ValueError) and str(kept) == "bad input"
    assert (failed, state) == (True, "FAILURE")
    assert isinstance(stored, ValueError)


def test_aget_times_out_with_the_state_it_saw(
    tasks: ModuleType, worker: Any, tmp_path: Path
) -> None:
    app = tasks.app
    gate = tmp_path / "gate"

    async def main() -> tuple[str, float, Any]:
        result = await app.asend_task("aio_client_tasks.wait_for", (str(gate),))
        started = time.monotonic()
        with pytest.raises(TimeoutError) as raised:
            await result.aget(timeout=0.3)
        took = time.monotonic() - started
        gate.touch()
        return str(raised.value), took, await result.aget(timeout=10)

    message, took, value = run(main())
    assert "not ready after 0.3s" in message
    assert took < 5, "the timeout bounds the wait"
    assert value == "opened", "a timed-out wait leaves the result to a later one"


def test_a_cancelled_wait_leaves_the_client_usable(
    tasks: ModuleType, worker: Any, tmp_path: Path
) -> None:
    app = tasks.app
    gate = tmp_path / "gate"

    async def main() -> tuple[Any, Any]:
        result = await app.asend_task("aio_client_tasks.wait_for", (str(gate),))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(result.aget(), 0.2)  # cancelled in the middle of a wait
        gate.touch()
        other = await app.asend_task("aio_client_tasks.add", (20, 22))
        return await result.aget(timeout=10), await other.aget(timeout=10)

    assert run(main()) == ("opened", 42)


def test_the_event_loop_keeps_running_while_results_are_awaited(
    tasks: ModuleType, worker: Any, tmp_path: Path
) -> None:
    """A ticker coroutine keeps ticking while another awaits an unfinished task."""
    app = tasks.app
    gate = tmp_path / "gate"

    ticker = Ticker(gate)  # only a running loop opens the gate: then the task may end

    async def main() -> Any:
        ticking = asyncio.create_task(ticker.run())
        result = await app.asend_task("aio_client_tasks.wait_for", (str(gate),))
        value = await result.aget(timeout=20)
        ticking.cancel()
        return value

    value = run(main())
    assert value == "opened" and ticker.ticks >= 20


def test_many_concurrent_sends_and_waits(tasks: ModuleType, worker: Any) -> None:
    app = tasks.app

    async def one(i: int) -> int:
        result = await app.asend_task("aio_client_tasks.add", (i, i))
        value: int = await result.aget(timeout=20)
        return value

    async def main() -> list[int]:
        return list(await asyncio.gather(*(one(i) for i in range(60))))

    assert run(main()) == [2 * i for i in range(60)]


def test_workflows_are_sent_and_awaited(tasks: ModuleType, worker: Any) -> None:
    add, tsum = tasks.add, tasks.tsum

    async def main() -> tuple[Any, ...]:
        members = await group(add.s(i, i) for i in range(5)).aapply_async()
        pair = await chain(add.s(1, 2), add.s(3)).aapply_async()
        joined = await chord([add.s(i, i) for i in range(4)], tsum.s()).aapply_async()
        return (
            members,
            await members.aget(timeout=10),
            await members,
            await members.astate(),
            await members.aready(),
            await members.acompleted_count(),
            await pair.aget(timeout=10),
            await joined.aget(timeout=10),
        )

    members, values, again, state, ready, completed, pair, total = run(main())
    assert isinstance(members, GroupResult)
    assert values == again == [0, 2, 4, 6, 8]
    assert (state, ready, completed) == ("SUCCESS", True, 5)
    assert (pair, total) == (6, 12)


def test_a_group_with_a_failed_member_raises_from_aget(tasks: ModuleType, worker: Any) -> None:
    add, fail = tasks.add, tasks.fail

    async def main() -> tuple[Any, ...]:
        members = await group([add.s(1, 1), fail.s("member broke")]).aapply_async()
        with pytest.raises(ValueError, match="member broke"):
            await members.aget(timeout=10)
        kept = await members.aget(timeout=10, propagate=False)
        return kept, await members.afailed(), await members.astate()

    kept, failed, state = run(main())
    assert kept[0] == 2 and isinstance(kept[1], ValueError)
    assert (failed, state) == (True, "FAILURE")


def test_a_chain_whose_first_step_failed_raises_that_error(tasks: ModuleType, worker: Any) -> None:
    """``follow_parents``: aget() on the chain's last result raises its parent's error."""
    add, fail = tasks.add, tasks.fail

    async def main() -> None:
        steps = await chain(fail.s("first step broke"), add.si(1, 1)).aapply_async()
        with pytest.raises(ValueError, match="first step broke"):
            await steps.aget(timeout=10)
        with pytest.raises(ValueError, match="first step broke"):
            await steps.parent.amaybe_throw()

    run(main())


def test_a_group_times_out_as_a_whole(tasks: ModuleType, worker: Any, tmp_path: Path) -> None:
    add, wait_for = tasks.add, tasks.wait_for
    gate = tmp_path / "gate"

    async def main() -> str:
        members = await group([add.s(1, 1), wait_for.s(str(gate))]).aapply_async()
        with pytest.raises(TimeoutError) as raised:
            await members.aget(timeout=0.3)
        gate.touch()
        await members.aget(timeout=10)
        return str(raised.value)

    assert "1 of 2 results not ready after 0.3s" in run(main())


def test_a_blocking_get_inside_an_event_loop_names_the_coroutine_to_await(
    tasks: ModuleType, worker: Any
) -> None:
    app, add = tasks.app, tasks.add

    async def main() -> tuple[str, str, Any, Any]:
        result = await app.asend_task("aio_client_tasks.add", (1, 2))
        with pytest.raises(BlockingCallError) as single:
            result.get(timeout=10)
        members = await group([add.s(1, 1)]).aapply_async()
        with pytest.raises(BlockingCallError) as several:
            members.get(timeout=10)
        ignored = await app.asend_task("aio_client_tasks.forget_me")
        eager = add.apply((2, 2))  # known already: get() does not block
        assert group([add.s(1, 1), add.s(2, 2)]).apply().get() == [2, 4]  # nor a group's
        await result.aget(timeout=10)
        await members.aget(timeout=10)
        return str(single.value), str(several.value), ignored.get(), eager.get()

    single, several, ignored, eager = run(main())
    assert "use `await result.aget()` instead" in single
    assert "use `await group_result.aget()` instead" in several
    assert (ignored, eager) == (None, 4)
    assert isinstance(BlockingCallError("x"), RuntimeError)


def test_outside_an_event_loop_get_still_works(tasks: ModuleType, worker: Any) -> None:
    """The refusal is about a running loop on this thread, not about async code nearby."""
    app = tasks.app
    result = run(app.asend_task("aio_client_tasks.add", (3, 4)))
    assert result.get(timeout=10) == 7


def test_waiting_coroutines_share_one_blocked_redis_connection(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hundred coroutines await tasks that no worker runs: from their first moment (when
    each waits for its reply) and after (registered for its key), they all wait on the
    loop's shared waiter list, read by one blocked connection; their registrations, made
    at once, go together, so the client does not open a connection per wait either."""
    import redis

    url = f"{redis_url}?prefix={redis_prefix}"
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    server = redis.Redis.from_url(redis_url)

    def blocked() -> tuple[int, int]:
        clients = server.info("clients")
        return int(clients["blocked_clients"]), int(clients["connected_clients"])

    with project_afresh("aio_client_tasks") as tasks:
        add = tasks.add

        async def main() -> tuple[Any, Any, Any, list[Any]]:
            before = await asyncio.to_thread(blocked)
            results = [await add.aapply_async((i, i), queue="nobody-consumes") for i in range(100)]
            waits = asyncio.gather(*(r.aget(timeout=1.5) for r in results), return_exceptions=True)
            await asyncio.sleep(0.1)  # each within its quarter second of waiting for a reply
            first = await asyncio.to_thread(blocked)
            await asyncio.sleep(0.8)  # each past it, registered for its key
            later = await asyncio.to_thread(blocked)
            return before, first, later, await waits

        before, first, later, outcomes = run(main())
    server.close()
    assert all(isinstance(o, TimeoutError) for o in outcomes)
    assert first[0] - before[0] <= 2, f"{first[0] - before[0]} more blocked connections at first"
    assert later[0] - before[0] <= 2, f"{later[0] - before[0]} more blocked connections later"
    assert later[1] - before[1] <= 10, f"{later[1] - before[1]} more connections"


def test_concurrent_reads_go_together(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hundred coroutines read task states at once: their reads go together (one MGET
    while one is on its way), not on a connection each."""
    import redis

    url = f"{redis_url}?prefix={redis_prefix}"
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    server = redis.Redis.from_url(redis_url)

    def connected() -> int:
        return int(server.info("clients")["connected_clients"])

    with project_afresh("aio_client_tasks") as tasks:

        async def main() -> tuple[int, int, list[str]]:
            before = await asyncio.to_thread(connected)
            results = [AsyncResult(f"never-sent-{i}", app=tasks.app) for i in range(200)]
            records = await asyncio.gather(*(r.aresult() for r in results))
            after = await asyncio.to_thread(connected)
            return before, after, [str(r) for r in records]

        before, after, records = run(main())
    server.close()
    assert records == ["None"] * 200
    assert after - before <= 10, f"{after - before} more connections"


def test_concurrent_waits_take_successes_and_failures_from_the_loops_list(
    tasks: ModuleType, worker: Any
) -> None:
    """Two hundred sends, every other one a task that fails, awaited together: each wait
    gets its own outcome, the failures too (handed to the loop's list like successes)."""
    app = tasks.app

    async def one(i: int) -> Any:
        if i % 2:
            result = await app.asend_task("aio_client_tasks.fail", (f"number {i}",))
        else:
            result = await app.asend_task("aio_client_tasks.add", (i, i))
        try:
            return await result.aget(timeout=20)
        except ValueError as exc:
            return str(exc)

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(one(i) for i in range(200))))

    assert run(main()) == [f"number {i}" if i % 2 else 2 * i for i in range(200)]


def test_outcomes_that_arrive_before_their_wait_are_kept_for_it(
    tasks: ModuleType, worker: Any
) -> None:
    """Results the loop's reader takes while other waits run (their own waits not begun)
    are kept for those waits, successes and failures alike."""
    app = tasks.app

    async def main() -> tuple[list[Any], list[Any]]:
        early = [await app.asend_task("aio_client_tasks.add", (i, 1)) for i in range(20)]
        failed = await app.asend_task("aio_client_tasks.fail", ("kept",))
        gate = await app.asend_task("aio_client_tasks.add", (0, 0))
        await asyncio.sleep(0.5)  # every task ends while no wait runs
        await gate.aget(timeout=20)  # starts the reader, which takes every reply
        values = [await r.aget(timeout=20) for r in early]
        errors = [await failed.aget(timeout=20, propagate=False)]
        return values, errors

    values, errors = run(main())
    assert values == [i + 1 for i in range(20)]
    assert [str(e) for e in errors] == ["kept"]


def test_a_failure_forgotten_since_its_reply_is_not_returned(
    tasks: ModuleType, worker: Any
) -> None:
    """A failure's reply waiting for its wait, then the result forgotten (as a re-send from
    the dead letters forgets it): the wait checks the reply against the store, and finds
    nothing; whether the reply still waited in the loop's list (no reader ran) or the
    loop's reader had taken and kept it."""
    app = tasks.app

    async def forgotten(failed: Any) -> str:
        await asyncio.to_thread(failed.forget)
        with pytest.raises(TimeoutError):
            await failed.aget(timeout=0.5)
        state: str = await failed.astate()
        return state

    async def main() -> tuple[str, str]:
        listed = await app.asend_task("aio_client_tasks.fail", ("stale in the list",))
        await asyncio.sleep(0.5)  # it ends while no reader runs: its reply stays in the list
        first = await forgotten(listed)
        kept = await app.asend_task("aio_client_tasks.fail", ("stale and kept",))
        gate = await app.asend_task("aio_client_tasks.add", (0, 0))
        await asyncio.sleep(0.5)  # both end
        await gate.aget(timeout=20)  # the reader takes the failure's reply too, and keeps it
        return first, await forgotten(kept)

    assert run(main()) == ("UNKNOWN", "UNKNOWN")


def test_an_unreachable_redis_is_a_broker_error_naming_it() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0?publish_retries=1&publish_retry_delay=0.01"
    app = Conveyor("nowhere", broker=url, set_as_current=False)
    add = app.task(name="nowhere.add")(lambda x, y: x + y)

    async def main() -> tuple[str, str, list[Any]]:
        with pytest.raises(BrokerError) as sending:
            await add.adelay(1, 2)
        with pytest.raises(BrokerError) as reading:
            await app.AsyncResult("some-id").astate()
        together = await asyncio.gather(
            *(add.adelay(i, i) for i in range(5)), return_exceptions=True
        )
        return str(sending.value), str(reading.value), together

    try:
        sending, reading, together = run(main())
    finally:
        app.close()
    assert "unreachable (publishing 1 message(s), tried 2 times)" in sending
    assert "unreachable" in reading and "127.0.0.1" in reading
    # the first send goes alone, the four made meanwhile wait and go together: each caller
    # gets the error of the call its message was in
    assert [type(e) for e in together] == [BrokerError] * 5
    assert "publishing 1 message(s)" in str(together[0])
    assert all("publishing 4 message(s)" in str(e) for e in together[1:])


def test_conveyor_imports_and_sends_from_coroutines_without_redis_installed(
    tmp_path: Path,
) -> None:
    """Without redis-py (nor fastapi or httpx) conveyor imports, and the async client works
    on SQLite: the Redis modules load only when a Redis store is used."""
    script = """
import asyncio, sys
for name in ("redis", "fastapi", "httpx", "uvloop"):
    sys.modules[name] = None  # importing it now fails, as if it were not installed
from conveyor import Conveyor
from conveyor.testing import run_until_empty
app = Conveyor("bare", broker=sys.argv[1])

@app.task
def add(x, y):
    return x + y

async def main():
    result = await app.asend_task(add.name, (2, 3))
    await asyncio.to_thread(run_until_empty, app)
    print(await result.aget(timeout=5), await result.astate())

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    run_ = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{tmp_path / 'bare.db'}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run_.returncode == 0, run_.stderr
    assert run_.stdout.split() == ["5", "SUCCESS"]
