"""The django_shop example, end to end with a real worker: sending, retrying then marking
failed, the admin action, the on-commit service, the long task's progress endpoint, and
the periodic task set up by its management command. Also the test helpers it would use."""

from __future__ import annotations

import io
import time

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse
from shop.emails.models import Email
from shop.emails.services import ApplicationError, email_create
from shop.emails.tasks import email_send

from conveyor import Conveyor
from conveyor.brokers.memory import MemoryBroker
from conveyor.contrib.django.fixtures import conveyor_eager, conveyor_worker  # noqa: F401
from conveyor.contrib.django.models import PeriodicTask, TaskResult
from conveyor.contrib.django.testing import eager, in_memory_worker
from conveyor.worker.local import LocalPool

from .conftest import Worker, wait_until


def status(email: Email) -> str:
    return Email.objects.get(pk=email.pk).status


def test_an_email_is_sent_by_the_worker_once_its_transaction_commits(worker: Worker) -> None:
    email = email_create(to="ada@example.com", subject="Welcome", plain_text="Hello Ada")

    wait_until(lambda: status(email) == "SENT", what="the email sent")
    assert Email.objects.get(pk=email.pk).sent_at is not None
    assert "Subject: Welcome" in worker.sent_mail() and "Hello Ada" in worker.sent_mail()


def test_a_rolled_back_order_sends_nothing(worker: Worker) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        email_create(to="ghost@example.com", subject="Never", plain_text="never sent")
        raise RuntimeError("payment declined")
    email = email_create(to="bob@example.com", subject="After", plain_text="sent")

    sends = TaskResult.objects.filter(task_name="shop.emails.tasks.email_send")
    wait_until(lambda: sends.filter(state="SUCCESS").exists())
    time.sleep(0.3)  # time enough for anything wrongly sent to have run too
    assert not Email.objects.filter(to="ghost@example.com").exists()
    assert "ghost@example.com" not in worker.sent_mail()
    assert list(sends.values_list("args", flat=True)) == [[email.pk]]  # not the ghost's


def test_a_failing_email_is_retried_then_marked_failed_by_on_failure(worker: Worker) -> None:
    email = email_create(to="nobody@unreachable.invalid", subject="Lost", plain_text="x")

    wait_until(lambda: status(email) == "FAILED", what="on_failure after the last retry")
    row = wait_until(lambda: TaskResult.objects.filter(state="FAILURE").first())
    assert row.task_name == "shop.emails.tasks.email_send"
    assert (row.state, row.retries) == ("FAILURE", 3)  # the first try and 3 retries
    assert "SMTPRecipientsRefused" in row.traceback
    assert "unreachable.invalid" not in worker.sent_mail()


def test_the_admin_action_sends_the_selected_emails(worker: Worker) -> None:
    ready = [
        Email.objects.create(to=f"user{i}@example.com", subject=f"News {i}", plain_text="n")
        for i in range(3)
    ]
    done = Email.objects.create(to="old@example.com", subject="Old", plain_text="o", status="SENT")
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(admin)

    response = client.post(
        reverse("admin:emails_email_changelist"),
        {"action": "send", "_selected_action": [e.pk for e in [*ready, done]]},
        follow=True,
    )

    assert "3 email(s) queued for sending" in response.content.decode()
    wait_until(lambda: all(status(e) == "SENT" for e in ready), what="three emails sent")
    assert worker.sent_mail().count("Subject: News") == 3
    assert "Subject: Old" not in worker.sent_mail()


def test_the_report_view_starts_a_long_task_whose_progress_is_reported(worker: Worker) -> None:
    for i in range(8):
        Email.objects.create(
            to=f"u{i}@example.{'com' if i % 2 else 'org'}", subject="s", plain_text="p"
        )
    client = Client()

    started = client.post(reverse("emails:report-start"))
    assert started.status_code == 202
    status_url = started.json()["status_url"]

    seen = []

    def finished() -> bool:
        body = client.get(status_url).json()
        seen.append(body)
        return bool(body["state"] == "SUCCESS")

    wait_until(finished, interval=0.02, what="the report")
    progress = [body["progress"] for body in seen if body["state"] == "PROGRESS"]
    assert progress, seen
    assert all(p["total"] == 8 and 0 < p["current"] <= 8 for p in progress), seen
    assert seen[-1]["result"] == {
        "total": 8,
        "by_status": {"READY": 8},
        "by_domain": {"example.com": 4, "example.org": 4},
    }


def test_the_periodic_tasks_command_replaces_the_schedule_on_every_deploy() -> None:
    call_command("setup_periodic_tasks", stdout=io.StringIO())
    task = PeriodicTask.objects.get()
    assert (task.name, task.task) == (
        "Retry failed emails",
        "shop.emails.tasks.emails_retry_failed",
    )
    assert task.crontab is not None and task.crontab.minute == "*/15"

    PeriodicTask.objects.filter(pk=task.pk).update(enabled=False)  # edited in the admin
    PeriodicTask.objects.create(name="ad hoc", task="x", crontab=task.crontab)
    call_command("setup_periodic_tasks", stdout=io.StringIO())

    again = PeriodicTask.objects.get()
    assert again.pk == task.pk and again.enabled  # the definition wins, its history stays


def test_eager_settings_run_the_task_inline_and_propagate_errors() -> None:
    with eager():
        email = email_create(to="ada@example.com", subject="Inline", plain_text="now")
        assert status(email) == "SENT"
        assert [m.subject for m in mail.outbox] == ["Inline"]


def test_a_worker_thread_on_an_in_memory_broker() -> None:
    with in_memory_worker() as pool:
        email = email_create(to="ada@example.com", subject="Threaded", plain_text="t")
        wait_until(lambda: status(email) == "SENT", what="the threaded worker")
        assert isinstance(pool.app.broker, MemoryBroker)
    assert [m.subject for m in mail.outbox] == ["Threaded"]


def test_the_pytest_fixtures(conveyor_eager: Conveyor) -> None:  # noqa: F811
    assert conveyor_eager.conf.task_always_eager and conveyor_eager.conf.task_eager_propagates
    with pytest.raises(ApplicationError):  # raised where the task was sent
        email_send.delay(Email.objects.create(to="a@example.com", subject="s", plain_text="p").pk)


def test_the_worker_fixture(conveyor_worker: LocalPool) -> None:  # noqa: F811
    result = conveyor_worker.app.send_task("testapp.ping")
    assert result.get(timeout=10) == "pong"
