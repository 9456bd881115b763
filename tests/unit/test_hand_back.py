"""Fair dispatch hands a busy consumer's reserved messages back; when that call fails part
way (a batch half done, as on a cluster whose slot moved mid-batch), the messages it did
hand back must not also run here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from conveyor import Conveyor
from conveyor.backends.memory import MemoryBackend
from conveyor.brokers.base import Delivery
from conveyor.brokers.memory import MemoryBroker
from conveyor.coordination.memory import MemoryCoordinator
from conveyor.exceptions import BrokerError
from conveyor.testing import FakeClock, _NoTracker
from conveyor.worker.consumer import Consumer


class HalfWay(MemoryBroker):
    """Hands back the first half of a batch, then fails as a lost connection would."""

    def nack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        half = len(deliveries) // 2
        super().nack_many(deliveries[:half])
        raise BrokerError("connection lost while handing messages back")


class Down(MemoryBroker):
    """Refuses every call that could hand back or check a lease: an outage."""

    def nack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        raise BrokerError("connection refused")

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        raise BrokerError("connection refused")


def drain_after_a_failed_hand_back(broker: type[MemoryBroker]) -> tuple[Counter[int], int]:
    """Six tasks reserved by one consumer, a hand-back of them that fails, then the consumer
    runs until it has run six: each task's runs, and how many the hand-back kept."""
    clock = FakeClock()
    app = Conveyor(
        "hand-back",
        broker=broker(clock=clock),
        backend=MemoryBackend(clock=clock),
        coordinator=MemoryCoordinator(clock=clock),
        clock=clock,
    )
    runs: Counter[int] = Counter()

    @app.task
    def note(n: int) -> None:
        runs[n] += 1

    for n in range(6):
        note.delay(n)
    consumer = Consumer(app, ["default"], "testing@localhost", _NoTracker(), None, max_tasks=6)
    consumer.buffer.extend(app.broker.reserve(["default"], 6, consumer.lease))
    consumer.hand_back_held(consumer.begun)
    kept = len(consumer.buffer)
    consumer.run()
    return runs, kept


def test_messages_a_failed_hand_back_returned_run_once_each() -> None:
    runs, kept = drain_after_a_failed_hand_back(HalfWay)
    assert kept == 3  # the three the broker never took back stay with the consumer
    assert runs == Counter(range(6))


def test_an_outage_keeps_every_message_to_run_after_the_task() -> None:
    runs, kept = drain_after_a_failed_hand_back(Down)
    assert kept == 6
    assert runs == Counter(range(6))
