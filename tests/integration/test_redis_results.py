"""Waiting for a result on Redis: a task sent on its own asks for a reply, so the worker's
write of its outcome also hands the value to the sender's ``get()``, which then blocks at
once (one round trip instead of two); a blocked ``get()`` polls its socket for a moment
before it sleeps (``result_spin``). Real worker processes run the tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from conveyor import Conveyor  # noqa: E402
from conveyor.backends.redis import RedisBackend  # noqa: E402
from conveyor.exceptions import TimeLimitExceeded  # noqa: E402
from conveyor.records import TaskRecord  # noqa: E402
from conveyor.serialization import decode_message  # noqa: E402

from .support import wait_until  # noqa: E402

TASKS = """
import os, time
from conveyor import Conveyor

app = Conveyor("replies", broker=os.environ["REPLIES_URL"], broker_lease=5)


@app.task(name="replies.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="replies.nap")
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


@app.task(name="replies.broken", dead_letter=True)
def broken() -> None:
    raise ValueError("bad input")


@app.task(name="replies.stuck", time_limit=0.3)
def stuck() -> None:
    time.sleep(5)
"""


@pytest.fixture
def url(redis_url: str, redis_prefix: str) -> str:
    return f"{redis_url}?prefix={redis_prefix}"


@pytest.fixture
def app(url: str) -> Iterator[Conveyor]:
    app = Conveyor("replies", broker=url, set_as_current=False)
    for name in ("add", "nap", "broken", "stuck"):
        app.task(name=f"replies.{name}")(lambda *a, **k: None)
    yield app
    app.broker.close()
    app.backend.close()


@pytest.fixture
def worker(tmp_path: Path, url: str) -> Iterator[subprocess.Popen[bytes]]:
    (tmp_path / "reply_tasks.py").write_text(textwrap.dedent(TASKS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(REPLIES_URL=url, PYTHONPATH=str(tmp_path))
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "-A", "reply_tasks:app", "-c", "1"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
    log.close()


def commands(raw: Any) -> int:
    return int(raw.info("stats")["total_commands_processed"])


def sent_message(app: Conveyor, raw: Any, task_id: str) -> Any:
    body = raw.hget(f"{app.broker.prefix}b", task_id)  # type: ignore[attr-defined]
    return decode_message(body[1:])  # after the priority digit


def test_a_task_sent_on_its_own_asks_for_a_reply_and_others_do_not(app: Conveyor, raw: Any) -> None:
    add = app.tasks["replies.add"]
    alone = add.delay(2, 3)
    with app.batch():
        batched = add.delay(1, 1)
    ignored = add.apply_async((1, 2), ignore_result=True)
    keyed = add.apply_async((1, 3), idempotency_key="once")
    assert sent_message(app, raw, alone.id).reply is True
    assert sent_message(app, raw, alone.id).reply_to == app.backend.reply_address()
    for other in (batched, ignored, keyed):
        assert sent_message(app, raw, other.id).reply is False
        assert sent_message(app, raw, other.id).reply_to is None
    app.broker.purge()


def empty_reply_list(app: Conveyor, raw: Any) -> str:
    """This thread's one reply list, emptied of what earlier tests left there (a reply
    that a get from another thread took by registering stays until it expires)."""
    assert app.tasks["replies.add"].delay(0, 0).get(timeout=30) == 0  # the worker is up
    replies = f"{app.backend.prefix}wl:{app.backend.reply_address()}"  # type: ignore[attr-defined]
    raw.delete(replies)
    return replies


def test_the_worker_hands_the_outcome_to_the_get_after_the_send(
    app: Conveyor, raw: Any, worker: subprocess.Popen[bytes]
) -> None:
    add = app.tasks["replies.add"]
    prefix = app.backend.prefix  # type: ignore[attr-defined]
    replies = empty_reply_list(app, raw)
    result = add.delay(2, 3)
    wait_until(lambda: raw.exists(replies), what="the reply")
    assert raw.llen(replies) == 1
    assert 1000 < raw.pttl(replies) <= 10000  # a send nobody waits for leaves it briefly
    assert not raw.exists(f"{prefix}r:{app.results.key(result.id)}")  # no list per task
    assert result.get(timeout=10) == 5
    assert not raw.exists(replies)  # taken by the get
    started = time.monotonic()
    for x in range(20):
        assert add.delay(x, 1).get(timeout=10) == x + 1
    assert time.monotonic() - started < 10


def test_many_sends_then_gets_in_any_order_take_their_replies_from_one_list(
    app: Conveyor, raw: Any, worker: subprocess.Popen[bytes]
) -> None:
    add = app.tasks["replies.add"]
    prefix = app.backend.prefix  # type: ignore[attr-defined]
    replies = empty_reply_list(app, raw)
    sent = [add.delay(x, 100) for x in range(60)]
    expected = {r.id: x + 100 for x, r in enumerate(sent)}
    wait_until(lambda: raw.llen(replies) >= 60, 20, what="60 replies")
    assert raw.llen(replies) == 60  # every outcome handed to the sending thread's list
    assert not any(raw.exists(f"{prefix}r:{app.results.key(r.id)}") for r in sent)
    order = sent[30:] + sent[:30][::-1]
    assert [r.get(timeout=10) for r in order] == [expected[r.id] for r in order]
    assert not raw.exists(replies)  # the first get kept the replies it popped for the others
    # a get from another thread than the sender's registers, and still gets the outcome
    other = add.delay(1, 2)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(other.get(timeout=10)))
    waiter.start()
    waiter.join()
    assert got == [3]


def test_a_failure_replies_on_its_own_list_which_forgetting_the_result_clears(
    app: Conveyor, raw: Any, worker: subprocess.Popen[bytes]
) -> None:
    replies = empty_reply_list(app, raw)
    prefix = app.backend.prefix  # type: ignore[attr-defined]
    failed = app.tasks["replies.broken"].delay()
    own = f"{prefix}r:{app.results.key(failed.id)}"
    wait_until(lambda: raw.exists(own), what="the failure's reply")
    assert raw.llen(own) == 1 and not raw.exists(replies)
    with pytest.raises(ValueError, match="bad input"):
        failed.get(timeout=10)
    again = app.tasks["replies.broken"].delay()
    own = f"{prefix}r:{app.results.key(again.id)}"
    wait_until(lambda: raw.exists(own), what="the failure's reply")
    again.forget()  # as a re-send from the dead letters forgets the failure
    assert not raw.exists(own)
    with pytest.raises(TimeoutError, match="not ready"):  # not the forgotten failure
        again.get(timeout=0.3)


def test_outcomes_without_a_quick_reply_still_reach_get(
    app: Conveyor, worker: subprocess.Popen[bytes]
) -> None:
    """A long task (the reply comes after the short reply wait), a failure written by the
    dead-letter path, and a task its supervisor killed (that write carries no reply)."""
    assert app.tasks["replies.add"].delay(0, 0).get(timeout=30) == 0
    assert app.tasks["replies.nap"].delay(0.6).get(timeout=10) == "rested"
    with pytest.raises(ValueError, match="bad input"):
        app.tasks["replies.broken"].delay().get(timeout=10)
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded):
        app.tasks["replies.stuck"].delay().get(timeout=10)
    assert time.monotonic() - started < 4


def test_the_get_after_a_send_takes_the_reply_in_one_command(app: Conveyor, raw: Any) -> None:
    result = app.tasks["replies.add"].delay(2, 3)
    record = TaskRecord(status="SUCCESS", result=5, task="replies.add")
    reply_to = sent_message(app, raw, result.id).reply_to
    assert app.results.write(result.id, record, None, reply=reply_to)  # as the worker does
    before = commands(raw)
    assert result.get(timeout=5) == 5
    assert commands(raw) - before == 2  # the BLPOP (and INFO itself): no registering call
    unreplied = app.tasks["replies.add"].delay(2, 3)
    app.results.write(unreplied.id, record)  # as a worker's supervisor does
    started = time.monotonic()
    assert unreplied.get(timeout=5) == 5  # after the short wait for a reply, as any get
    assert time.monotonic() - started < 2
    app.broker.purge()


def test_a_second_get_and_a_get_from_another_thread(app: Conveyor, raw: Any) -> None:
    result = app.tasks["replies.add"].delay(2, 3)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(result.get(timeout=5)))
    waiter.start()
    time.sleep(0.05)
    record = TaskRecord(status="SUCCESS", result=5, task="replies.add")
    reply_to = sent_message(app, raw, result.id).reply_to
    app.results.write(result.id, record, None, reply=reply_to)  # as the worker does
    waiter.join()
    assert got == [5]
    assert result.get(timeout=1) == 5  # the reply is taken: read, as any get does
    app.broker.purge()


def test_a_result_wait_polls_before_it_sleeps_and_result_spin_sets_the_limit(
    redis_url: str, redis_prefix: str
) -> None:
    """In a fresh process (polling needs a thread alone in its process; pytest's may not be).
    The result is written by another process within the limit, so the poll sees it."""
    writer = f"""
import time
from conveyor.backends.redis import RedisBackend
time.sleep(0.2)
RedisBackend({redis_url!r}, prefix={redis_prefix!r}).set("k", b"done", 60)
"""
    script = f"""
import subprocess, sys, threading
from conveyor.backends.redis import RedisBackend
spinning = RedisBackend({redis_url + "?result_spin=3000000"!r}, prefix={redis_prefix!r})
quiet = RedisBackend({redis_url + "?result_spin=0"!r}, prefix={redis_prefix!r})
assert (spinning.link.result_spin, quiet.link.result_spin) == (3.0, 0.0)
assert "result_spin" not in spinning.link.pool.connection_kwargs
writer = subprocess.Popen([sys.executable, "-c", {writer!r}])
assert threading.active_count() == 1
assert spinning.wait("k", bool, timeout=10) == b"done"
polls = spinning.link._own.results
assert polls.count == 1 and polls.poller is not None and polls.misses == 0.0
writer.wait()
quiet.set("j", b"x", 60)
assert quiet.wait("j", lambda v: v == b"y", timeout=0.2) == b"x"
assert quiet.link._own.results.poller is None
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_only_a_backend_on_redis_time_hands_replies(redis_url: str) -> None:
    assert RedisBackend(redis_url).replies
    assert not RedisBackend(redis_url, clock=time.time).replies
