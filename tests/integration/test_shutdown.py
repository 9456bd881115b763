"""Warm and cold shutdown of the prefork worker: nothing running or reserved is lost."""

from __future__ import annotations

import os
import signal

import pytest

from conveyor import states
from conveyor.brokers.base import QueueStats

from .support import DEFAULT_TIMEOUT, read_jsonl, signal_set, wait_until, waiting_in_select

STOPS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
"""Whatever signal the supervisor uses to stop a child, it must not be left pending."""


def events(path, kind: str) -> list[dict]:
    return [e for e in read_jsonl(path) if e["event"] == kind]


def send_held_and_queued(tasks, workdir):
    """A gated task first (priority 9), then three quick ones behind it."""
    log, gate = workdir / "hold.jsonl", workdir / "gate"
    held = tasks.hold.apply_async((str(log), str(gate)), priority=9)
    queued = [tasks.add.delay(i, i) for i in range(3)]
    return log, gate, held, queued


def test_sigterm_lets_the_running_task_finish_and_hands_back_the_rest(tasks, workers, workdir):
    log, gate, held, queued = send_held_and_queued(tasks, workdir)
    worker = workers.start("--prefetch-multiplier", "4")  # the child reserves all four at once
    wait_until(lambda: events(log, "start"), what="the held task to start")
    assert tasks.app.broker.stats() == {"default": QueueStats(reserved=4)}

    worker.signal(signal.SIGTERM)
    worker.wait_for_log("warm shutdown")
    assert worker.running()  # still finishing the held task
    gate.touch()

    assert worker.wait() == 0
    assert held.state == states.SUCCESS
    assert held.get(timeout=1)["redelivered"] is False
    # None is lost: each quick task either ran or is back in the queue, not left reserved.
    after = [r.state for r in queued]
    assert set(after) <= {states.SUCCESS, states.PENDING}
    waiting = after.count(states.PENDING)
    assert tasks.app.broker.stats() == ({"default": QueueStats(ready=waiting)} if waiting else {})

    workers.start()
    assert [r.get(timeout=DEFAULT_TIMEOUT) for r in queued] == [0, 2, 4]
    assert len(events(log, "done")) == 1


def test_sigterm_to_the_process_group_hands_back_every_unstarted_task(tasks, workers, workdir):
    """What systemd (KillMode=control-group) or a terminal's Ctrl-C group signal does."""
    log, gate, held, queued = send_held_and_queued(tasks, workdir)
    worker = workers.start()
    (started,) = wait_until(lambda: events(log, "start"), what="the held task to start")
    child = started["pid"]

    os.killpg(worker.pid, signal.SIGTERM)
    # Open the gate only once the child has been told to stop, so it cannot start another
    # task: the supervisor logs, signals its children, then goes back to select().
    worker.wait_for_log("warm shutdown")
    wait_until(lambda: waiting_in_select(worker.pid), interval=0.005, what="the supervisor")
    wait_until(
        lambda: not any(signal_set(child, f, s) for f in ("SigPnd", "ShdPnd") for s in STOPS),
        what="the child to take its stop signal",
    )
    gate.touch()

    assert worker.wait() == 0
    assert held.state == states.SUCCESS
    assert [r.state for r in queued] == [states.PENDING] * 3
    assert tasks.app.broker.stats() == {"default": QueueStats(ready=3)}
    workers.start()
    assert [r.get(timeout=DEFAULT_TIMEOUT) for r in queued] == [0, 2, 4]


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGINT), (signal.SIGQUIT,)],
    ids=["sigterm-twice", "sigint-twice", "sigquit"],
)
def test_cold_shutdown_stops_the_running_task_and_loses_nothing(tasks, workers, workdir, signals):
    log, gate = workdir / "hold.jsonl", workdir / "gate"
    worker = workers.start()
    held = tasks.hold.delay(str(log), str(gate))
    wait_until(lambda: events(log, "start"), what="the held task to start")

    for i, signum in enumerate(signals):
        if i:
            worker.wait_for_log("warm shutdown")
        worker.signal(signum)
    worker.wait()

    assert "cold shutdown" in worker.log()
    assert held.state == states.STARTED
    assert not events(log, "done")
    # Not lost: still in the broker (its lease lapses; the next worker recovers it).
    assert sum(s.total for s in tasks.app.broker.stats().values()) == 1
    gate.touch()
    second = workers.start()
    info = held.get(timeout=DEFAULT_TIMEOUT)
    assert info["redelivered"] is True
    assert info["hostname"] == second.hostname


def test_sigterm_while_children_are_starting_still_stops_the_worker(tasks, workers):
    """Regression: a stop signal that reached a child before it had installed its own
    handler used to be swallowed by the inherited supervisor handler, and warm shutdown
    then waited for that child forever."""
    worker = workers.start("-c", "2", ready=False)
    # The supervisor installs its SIGTERM handler just before it forks the children.
    wait_until(
        lambda: signal_set(worker.pid, "SigCgt", signal.SIGTERM),
        interval=0.0002,
        what="the supervisor's SIGTERM handler",
    )

    worker.signal(signal.SIGTERM)

    assert worker.wait(timeout=5) == 0
