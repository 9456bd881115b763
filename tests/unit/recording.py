"""A worker ``Tracker`` that remembers what it was told, for tests of the executor and outbox."""

from __future__ import annotations

from conveyor.brokers.base import Delivery
from conveyor.worker.outbox import Tracker

__all__ = ["RecordingTracker"]


class RecordingTracker(Tracker):
    """Stands in for the supervisor's lease keeper (the protocol's methods do nothing) and
    keeps the ids of the deliveries it was told are let go."""

    def __init__(self) -> None:
        self.released_ids: list[str] = []

    def released(self, deliveries: list[Delivery]) -> None:
        self.released_ids.extend(delivery.id for delivery in deliveries)
