"""What a caller gets back: values, typed arguments and results, failures, and states."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from conveyor import AsyncResult, states

from .support import DEFAULT_TIMEOUT, wait_until


def test_add_returns_the_sum(tasks, workers):
    workers.start()

    result = tasks.add.delay(2, 3)

    assert result.get(timeout=DEFAULT_TIMEOUT) == 5
    assert result.state == states.SUCCESS
    assert result.successful() and result.ready() and not result.failed()


def test_send_task_by_name_from_a_fresh_client_app(tasks, workers, broker_url):
    from conveyor import Conveyor

    workers.start()
    client = Conveyor("client", broker=broker_url)
    try:
        result = client.send_task("sample_tasks.add", [40, 2])
        assert result.get(timeout=DEFAULT_TIMEOUT) == 42
    finally:
        client.close()


def test_dataclass_argument_arrives_as_the_dataclass(tasks, workers):
    workers.start()
    order = tasks.Order(sku="SKU-1", quantity=3, unit_price=Decimal("2.50"))

    result = tasks.order_total.delay(order)

    assert result.get(timeout=DEFAULT_TIMEOUT) == {"sku": "SKU-1", "total": "7.50"}


def test_datetime_uuid_and_decimal_arguments_keep_their_types(tasks, workers):
    workers.start()
    when = datetime(2024, 2, 29, 12, 30, 15, tzinfo=UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")

    result = tasks.describe_values.delay(when, ident, Decimal("19.99"))

    assert result.get(timeout=DEFAULT_TIMEOUT) == {
        "types": ["datetime", "UUID", "Decimal"],
        "when": "2024-02-29T12:30:15+00:00",
        "uuid": "12345678-1234-5678-1234-567812345678",
        "amount_plus_cent": "20.00",
    }


def test_annotated_return_value_comes_back_typed(tasks, workers):
    workers.start()
    when = datetime(2024, 12, 31, 23, 0, tzinfo=UTC)

    value = tasks.next_day.delay(when).get(timeout=DEFAULT_TIMEOUT)

    assert isinstance(value, datetime)
    assert value == datetime(2025, 1, 1, 23, 0, tzinfo=UTC)


def test_failure_reraises_the_original_exception_with_its_traceback(tasks, workers):
    workers.start()

    result = tasks.charge.delay("4242", 100)

    with pytest.raises(tasks.PaymentDeclined, match="card 4242 declined for 100"):
        result.get(timeout=DEFAULT_TIMEOUT)
    assert result.state == states.FAILURE
    assert result.failed() and result.ready() and not result.successful()
    assert isinstance(result.result, tasks.PaymentDeclined)
    assert 'raise PaymentDeclined(f"card {card} declined for {amount}")' in result.traceback
    assert "PaymentDeclined: card 4242 declined for 100" in result.traceback


def test_failure_with_propagate_false_returns_the_exception(tasks, workers):
    workers.start()
    result = tasks.charge.delay("1111", 5)

    value = result.get(timeout=DEFAULT_TIMEOUT, propagate=False)

    assert isinstance(value, tasks.PaymentDeclined)
    assert str(value) == "card 1111 declined for 5"


def test_unknown_id_is_unknown(app):
    result = AsyncResult(str(uuid.uuid4()), app=app)

    assert result.state == states.UNKNOWN
    assert not result.ready()


def test_sent_task_is_pending_until_a_worker_runs_it(tasks, workers):
    result = tasks.add.delay(1, 1)

    assert result.state == states.PENDING
    assert tasks.app.AsyncResult(result.id).state == states.PENDING
    assert not result.ready()

    workers.start()

    assert result.get(timeout=DEFAULT_TIMEOUT) == 2
    assert result.state == states.SUCCESS


def test_result_is_readable_from_another_process(tasks, workers, cli):
    workers.start()
    result = tasks.add.delay(20, 22)
    result.get(timeout=DEFAULT_TIMEOUT)

    shown = cli("result", "-A", "sample_tasks:app", result.id)

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "SUCCESS: 42"


def test_cli_result_of_an_unknown_id_says_unknown(tasks, cli):
    task_id = str(uuid.uuid4())

    shown = cli("result", "-A", "sample_tasks:app", task_id)

    assert shown.returncode == 1
    assert shown.stdout.startswith("UNKNOWN")


def test_date_done_is_set_when_ready(tasks, workers):
    workers.start()
    before = datetime.now(UTC) - timedelta(seconds=1)

    result = tasks.add.delay(3, 4)
    result.get(timeout=DEFAULT_TIMEOUT)

    done = wait_until(lambda: result.date_done, what="date_done")
    assert done >= before
