"""Routing in real workers: a worker started without ``-Q`` consumes the queues that
``task_queues`` names, and a routed task runs on a worker of its queue."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from conveyor import states

from .support import DEFAULT_TIMEOUT, project_afresh

APP = "routed_tasks:app"


@pytest.fixture
def routed(broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The routed project (apps/routed_tasks.py), imported afresh on this test's file."""
    monkeypatch.setenv("CONVEYOR_BROKER_URL", broker_url)
    with project_afresh("routed_tasks") as module:
        yield module


def test_a_worker_without_queues_consumes_every_queue_task_queues_names(routed, workers):
    sent = [
        routed.import_feed.delay("https://example.com/rss"),
        routed.send_email.delay("ada@example.com"),
        routed.tidy.delay(),
    ]

    worker = workers.start(app=APP)

    assert "queues:      default, feeds, mail" in worker.log()
    assert [r.get(timeout=DEFAULT_TIMEOUT)["queue"] for r in sent] == ["feeds", "mail", "default"]


def test_a_routed_task_runs_on_a_worker_of_its_queue(routed, workers):
    feeds = workers.start("-Q", "feeds", app=APP)
    mail = workers.start("-Q", "mail", app=APP)

    imported = routed.import_feed.delay("https://example.com/rss")
    urgent = routed.send_email.delay("ada@example.com", urgent=True)
    explicit = routed.send_email.apply_async(("bob@example.com",), queue="feeds")
    tidy = routed.tidy.delay()

    assert imported.get(timeout=DEFAULT_TIMEOUT) == {"queue": "feeds", "hostname": feeds.hostname}
    assert urgent.get(timeout=DEFAULT_TIMEOUT) == {"queue": "mail", "hostname": mail.hostname}
    assert explicit.get(timeout=DEFAULT_TIMEOUT) == {"queue": "feeds", "hostname": feeds.hostname}
    assert tidy.state == states.PENDING  # nobody consumes the default queue
    assert routed.app.broker.stats()["default"].ready == 1
