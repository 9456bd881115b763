"""Results in Django's database: the ResultBackend contract (tests/unit/
test_backend_contract.py) against DjangoResultBackend, for plain keys and for task keys
(which live in TaskResult rows), and task runs listed with their details."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Sequence

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse
from shop.emails.models import Email
from shop.emails.services import email_create

from conveyor.backends.base import ResultBackend
from conveyor.contrib.django import get_app
from conveyor.contrib.django.models import ResultValue, TaskResult
from conveyor.contrib.django.results import DjangoResultBackend
from conveyor.records import ResultStore
from conveyor.testing import FakeClock

from .conftest import Worker, adopt_contract, wait_until

_contract = adopt_contract("test_backend_contract.py", "backend", globals(), "backend_contract")


class TaskKeys(ResultBackend):
    """The same backend with every key made a task key, so TaskResult rows are tested."""

    def __init__(self, inner: DjangoResultBackend) -> None:
        self.inner = inner
        self.poll_interval = inner.poll_interval

    def _k(self, key: str) -> str:
        return ResultStore.prefix + key

    def get(self, key: str) -> bytes | None:
        return self.inner.get(self._k(key))

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.inner.mget([self._k(k) for k in keys])

    def set(self, key: str, value: bytes, ttl: float, fence: int | None = None) -> bool:
        return self.inner.set(self._k(key), value, ttl, fence)

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        self.inner.set_many([(self._k(k), v) for k, v in items], ttl)

    def delete(self, keys: Sequence[str]) -> int:
        return self.inner.delete([self._k(k) for k in keys])

    def incr(self, key: str, amount: int, ttl: float) -> int:
        return self.inner.incr(self._k(key), amount, ttl)

    def add_to_set(self, key: str, member: str, ttl: float) -> int:
        return self.inner.add_to_set(self._k(key), member, ttl)

    def set_members(self, key: str) -> builtins.set[str]:
        return self.inner.set_members(self._k(key))

    def expire(self, key: str, ttl: float) -> bool:
        return self.inner.expire(self._k(key), ttl)

    def cleanup(self) -> int:
        return self.inner.cleanup()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(_contract.START)


@pytest.fixture(params=["keys", "task-keys"])
def backend(request: pytest.FixtureRequest, clock: FakeClock) -> ResultBackend:
    made = DjangoResultBackend(clock=clock)
    return made if request.param == "keys" else TaskKeys(made)


def test_task_keys_and_other_keys_live_in_their_own_tables(clock: FakeClock) -> None:
    backend = DjangoResultBackend(clock=clock)
    backend.set(ResultStore.prefix + "abc", b'{"status":"STARTED","task":"t"}', 60)
    backend.set("conveyor-group-g", b"[]", 60)

    row = TaskResult.objects.get()
    assert (row.task_id, row.task_name, row.state) == ("abc", "t", "STARTED")
    assert row.date_started is not None
    assert ResultValue.objects.get().key == "conveyor-group-g"


def test_a_quick_task_without_started_still_shows_when_it_began(clock: FakeClock) -> None:
    backend = DjangoResultBackend(clock=clock)
    done = clock() - 1
    value = b'{"status":"SUCCESS","task":"t","date_done":%f,"runtime":0.25}' % done
    backend.set(ResultStore.prefix + "q1", value, 60)

    row = TaskResult.objects.get(task_id="q1")
    assert row.runtime == 0.25
    assert row.date_done is not None and row.date_started is not None
    assert (row.date_done - row.date_started).total_seconds() == pytest.approx(0.25, abs=1e-3)


def test_the_arguments_reach_an_outcome_written_from_another_thread(clock: FakeClock) -> None:
    backend = DjangoResultBackend(clock=clock)
    backend.remember_call("t1", [7, "x"], {"fast": True})  # the worker thread, at task start

    def write() -> None:  # the worker's background writer stores the outcome
        try:
            backend.set(ResultStore.prefix + "t1", b'{"status":"SUCCESS","task":"t"}', 60)
        finally:
            connection.close()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    row = TaskResult.objects.get(task_id="t1")
    assert (row.state, row.args, row.kwargs) == ("SUCCESS", [7, "x"], {"fast": True})


def test_a_task_run_is_recorded_with_its_details(worker: Worker) -> None:
    email = email_create(to="ada@example.com", subject="Hello", plain_text="Hi Ada")
    wait_until(lambda: Email.objects.get(pk=email.pk).status == "SENT", what="the email sent")

    sent = TaskResult.objects.filter(state="SUCCESS", task_name="shop.emails.tasks.email_send")
    row = wait_until(sent.first)  # not the worker fixture's start-up ping, if it began here
    assert row.task_name == "shop.emails.tasks.email_send"
    assert (row.args, row.kwargs) == ([email.pk], {})
    assert row.worker and row.date_done and row.date_started
    assert row.runtime is not None and 0 <= row.runtime < 10
    record = get_app().results.read(row.task_id)
    assert record is not None and record.status == "SUCCESS"

    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(admin)
    listing = client.get(reverse("admin:conveyor_taskresult_changelist")).content.decode()
    assert "shop.emails.tasks.email_send" in listing and "SUCCESS" in listing
    detail = client.get(reverse("admin:conveyor_taskresult_change", args=[row.pk]))
    assert detail.status_code == 200


def test_a_failed_task_keeps_its_traceback(worker: Worker) -> None:
    from contrib_django.testapp.tasks import more

    result = more.explode.enqueue()
    wait_until(lambda: TaskResult.objects.filter(task_id=result.id, state="FAILURE").exists())

    row = TaskResult.objects.get(task_id=result.id)
    assert "ValueError: kaboom" in row.traceback
    assert row.result == "ValueError: kaboom"
