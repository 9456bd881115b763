"""Chords under fire: 120 chords of 50 members while workers are SIGKILLed every few seconds.

Two workers (two children each) share the queue; every ``KILL_EVERY`` seconds one of them
is killed with its children, as the OOM killer would, and a fresh one is started in its
place. Leases are short (``broker_lease=2`` in the sample app), so what a dead worker held
comes back quickly. Every callback must fire exactly once, with the right value, and only
once all 50 of its members have run.

The callback notes each run with its delivery count. Two runs that were both first
deliveries mean the callback was *fired* (published) twice: a duplicate. A run with a
delivery count above 1 is the same firing delivered again because a kill landed while it
ran; that is at-least-once delivery, printed but not a duplicate.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import suppress

from conveyor import chord

from .support import read_jsonl, wait_until
from .workflow_support import start_worker, wf

__all__ = ["wf"]

CHORDS = 120
MEMBERS = 50
PAUSE = 0.005
"""Seconds each member sleeps, so kills land mid-task."""
KILL_EVERY = 2.0
DEADLINE = 50.0


def test_every_callback_fires_exactly_once_while_workers_are_killed(wf, workers, workdir):
    members_log = str(workdir / "members.jsonl")
    callbacks_log = str(workdir / "callbacks.jsonl")
    live = [start_worker(workers, "-c", "2"), start_worker(workers, "-c", "2")]
    kills = 0
    stop = threading.Event()

    def killer() -> None:
        nonlocal kills
        turn = 0
        while not stop.wait(KILL_EVERY):
            victim = live[turn % 2]
            victim.kill_group()
            kills += 1
            live[turn % 2] = start_worker(workers, "-c", "2")
            turn += 1

    thread = threading.Thread(target=killer, name="chord-fault-killer", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        results = [
            chord(
                [wf.chord_member.s(c, i, members_log, PAUSE) for i in range(MEMBERS)],
                wf.chord_done.s(c, callbacks_log, members_log, MEMBERS),
            ).apply_async()
            for c in range(CHORDS)
        ]

        def fired() -> bool:
            return len({e["chord"] for e in read_jsonl(callbacks_log)}) == CHORDS

        with suppress(AssertionError):  # a timeout is reported below, with the counts
            wait_until(fired, timeout=DEADLINE, interval=0.2, what="every chord's callback")
        # Let anything in flight settle: a late duplicate would show up within a few leases.
        time.sleep(2 * 2.0 + 1.0)
    finally:
        stop.set()
        thread.join(30)
    elapsed = time.monotonic() - started

    runs: dict[int, list[dict]] = defaultdict(list)
    for entry in read_jsonl(callbacks_log):
        runs[entry["chord"]].append(entry)
    expected = {c: MEMBERS * c * 1000 + sum(range(MEMBERS)) for c in range(CHORDS)}
    missing = [c for c in range(CHORDS) if c not in runs]
    duplicated = [c for c, rs in runs.items() if sum(r["delivery"] == 1 for r in rs) > 1]
    early = [c for c, rs in runs.items() if any(r["members_seen"] < MEMBERS for r in rs)]
    wrong = [
        c
        for c, rs in runs.items()
        if any(r["total"] != expected[c] or r["count"] != MEMBERS for r in rs)
    ]
    redelivered = sum(r["delivery"] > 1 for rs in runs.values() for r in rs)
    member_reruns = sum(e["delivery"] > 1 for e in read_jsonl(members_log))
    values_ok = sum(
        1 for c, result in enumerate(results) if result.ready() and result.get() == expected[c]
    )
    print(
        f"\nchord faults: {CHORDS} chords x {MEMBERS} members, {kills} worker kills, "
        f"{elapsed:.1f}s\n"
        f"  callbacks missing:    {len(missing)}\n"
        f"  callbacks duplicated: {len(duplicated)}\n"
        f"  callbacks early:      {len(early)}\n"
        f"  wrong values:         {len(wrong)}\n"
        f"  results readable:     {values_ok} of {CHORDS}\n"
        f"  callback runs redelivered after a kill (same firing): {redelivered}\n"
        f"  member runs redelivered after a kill: {member_reruns}"
    )
    assert kills >= 3, "the workers were not killed often enough to test anything"
    assert member_reruns > 0, "no kill landed while a member ran"
    assert (missing, duplicated, early, wrong) == ([], [], [], [])
    assert values_ok == CHORDS
