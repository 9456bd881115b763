"""conveyor.retries: whether a task gets another attempt, when, and with which message."""

from __future__ import annotations

import pickle
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor import Conveyor, Task
from conveyor.exceptions import MaxRetriesExceededError, Retry
from conveyor.message import Message
from conveyor.request import Context
from conveyor.retries import (
    autoretry_options,
    backoff_delay,
    check_attempts_left,
    new_retry,
    next_call,
    next_message,
)
from conveyor.testing import FakeClock, memory_app

NOW = 1_700_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def app(clock: FakeClock) -> Conveyor:
    return memory_app(f"retries-{uuid.uuid4().hex[:6]}", clock=clock)


@pytest.fixture
def fetch(app: Conveyor) -> Task[..., Any]:
    @app.task(bind=True, max_retries=3, default_retry_delay=30)
    def fetch_feed(self: Task[..., Any], url: str, page: int = 1) -> str:
        return url

    return fetch_feed


def _message(**fields: Any) -> Message:
    return Message(id="m-1", task="fetch_feed", args=["https://a.example"], **fields)


def test_retry_carries_its_next_attempt_as_attributes() -> None:
    cause = ConnectionError("reset")
    retry = Retry("try later", cause, 10, args_override=(1,), kwargs_override={"page": 2})
    assert (retry.message, retry.exc, retry.when) == ("try later", cause, 10)
    assert retry.args == ("try later", cause, 10)  # Celery's positional signature
    assert (retry.args_override, retry.kwargs_override, retry.options) == ((1,), {"page": 2}, {})
    again = pickle.loads(pickle.dumps(retry))
    assert (again.args_override, again.kwargs_override) == ((1,), {"page": 2})


def test_no_attempt_left_raises_the_cause_or_max_retries_exceeded(
    fetch: Task[..., Any],
) -> None:
    in_worker = Context(id="t-1", retries=3, called_directly=False)
    check_attempts_left(fetch, Context(retries=2, called_directly=False), 3, None)
    check_attempts_left(fetch, in_worker, None, None)  # max_retries=None: no limit
    with pytest.raises(ConnectionError):
        check_attempts_left(fetch, in_worker, 3, ConnectionError("reset"))
    with pytest.raises(MaxRetriesExceededError, match=r"3 of 3 retries used"):
        check_attempts_left(fetch, in_worker, 3, None)
    with pytest.raises(MaxRetriesExceededError, match="called directly"):
        check_attempts_left(fetch, Context(), 3, None)


def test_new_retry_is_due_at_eta_else_countdown_else_the_default_delay(
    fetch: Task[..., Any],
) -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert new_retry(fetch, None, None, None, at, 5, {}).when == at
    assert new_retry(fetch, None, None, None, None, 5, {}).when == 5.0
    default = new_retry(fetch, ["u"], {"page": 2}, None, None, None, {"queue": "slow"})
    assert default.when == 30.0
    assert (default.args_override, default.kwargs_override) == (("u",), {"page": 2})
    assert default.options == {"queue": "slow"}


def test_next_message_is_one_more_retry_due_after_the_countdown(
    fetch: Task[..., Any], clock: FakeClock
) -> None:
    message = _message(retries=1, queue="feeds")
    again = next_message(message, Retry(when=30.0), fetch, clock())
    assert (again.id, again.retries, again.eta, again.sent_at) == ("m-1", 2, NOW + 30, NOW)
    assert (again.args, again.queue) == (["https://a.example"], "feeds")
    clock.advance(100)
    assert next_message(message, Retry(), fetch, clock()).eta == NOW + 100 + 30  # default delay


def test_next_message_takes_the_new_arguments_and_options(
    fetch: Task[..., Any], clock: FakeClock
) -> None:
    due = datetime(2030, 1, 1, tzinfo=UTC)
    retry = Retry(
        when=due,
        args_override=("https://b.example",),
        kwargs_override={"page": 3},
        options={"queue": "slow", "priority": 9, "expires": timedelta(minutes=5)},
    )
    again = next_message(_message(), retry, fetch, clock())
    assert (again.args, again.kwargs) == (["https://b.example"], {"page": 3})
    assert (again.queue, again.priority, again.eta) == ("slow", 9, due.timestamp())
    assert again.expires == NOW + 300
    with_countdown = Retry(when=due, options={"countdown": 7})
    assert next_message(_message(), with_countdown, fetch, clock()).eta == NOW + 7


def test_next_call_keeps_the_arguments_unless_retry_replaces_them() -> None:
    assert next_call(Retry(), (1,), {"a": 1}) == ((1,), {"a": 1})
    assert next_call(Retry(args_override=(2,), kwargs_override={}), (1,), {"a": 1}) == ((2,), {})


def test_backoff_doubles_up_to_its_maximum_without_jitter(app: Conveyor) -> None:
    @app.task(retry_backoff=2, retry_backoff_max=10, retry_jitter=False)
    def sync_contacts() -> None: ...

    @app.task
    def plain() -> None: ...

    assert [backoff_delay(sync_contacts, n) for n in range(4)] == [2.0, 4.0, 8.0, 10.0]
    assert backoff_delay(plain, 2) is None


def test_jittered_backoff_stays_between_zero_and_the_doubled_delay(app: Conveyor) -> None:
    @app.task(retry_backoff=True, retry_jitter=True)
    def sync_contacts() -> None: ...

    delays = [backoff_delay(sync_contacts, 3) for _ in range(50)]
    assert all(d is not None and 0 <= d <= 8 for d in delays)


def test_autoretry_options_use_the_backoff_unless_retry_kwargs_set_a_countdown(
    app: Conveyor,
) -> None:
    @app.task(retry_backoff=True, retry_jitter=False, retry_kwargs={"max_retries": 5})
    def backing_off() -> None: ...

    @app.task(retry_backoff=True, retry_kwargs={"countdown": 1})
    def fixed() -> None: ...

    assert autoretry_options(backing_off, 2) == {"max_retries": 5, "countdown": 4.0}
    assert autoretry_options(fixed, 2) == {"countdown": 1}
