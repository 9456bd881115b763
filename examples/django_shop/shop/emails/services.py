"""The business logic. Services change data inside transactions; they send tasks only once
their transaction has committed, so a worker never looks for a row that is not there yet
(or that a rollback took away)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone

from .models import Email
from .tasks import email_send as email_send_task

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    pass


@transaction.atomic
def email_send(email: Email) -> Email:
    """Send one email through Django's mail backend and mark it sent."""
    if email.status != Email.Status.SENDING:
        raise ApplicationError(f"Cannot send non-ready emails. Current status is {email.status}")
    message = EmailMultiAlternatives(
        email.subject, email.plain_text, settings.DEFAULT_FROM_EMAIL, [email.to]
    )
    if email.html:
        message.attach_alternative(email.html, "text/html")
    message.send()
    email.status = Email.Status.SENT
    email.sent_at = timezone.now()
    email.save(update_fields=["status", "sent_at"])
    return email


def email_failed(email: Email) -> Email:
    email.status = Email.Status.FAILED
    email.save(update_fields=["status"])
    return email


@transaction.atomic
def email_create(*, to: str, subject: str, plain_text: str, html: str = "") -> Email:
    """Create an email and send it once this transaction commits (the styleguide's way)."""
    email = Email.objects.create(
        to=to, subject=subject, plain_text=plain_text, html=html, status=Email.Status.SENDING
    )
    transaction.on_commit(lambda: email_send_task.delay(email.id))
    return email


@transaction.atomic
def emails_send(emails: Iterable[Email]) -> list[int]:
    """Send emails that are ready or failed (the admin action); the ids queued."""
    ids = [e.id for e in emails if e.status in (Email.Status.READY, Email.Status.FAILED)]
    Email.objects.filter(id__in=ids).update(status=Email.Status.SENDING)
    for email_id in ids:
        email_send_task.delay_on_commit(email_id)  # the same, as a method of the task
    return ids


def emails_retry_failed() -> list[int]:
    """Send every failed email again (the periodic task)."""
    return emails_send(Email.objects.filter(status=Email.Status.FAILED))


def emails_report(progress: Callable[[int, int], Any] | None = None) -> dict[str, Any]:
    """Count emails by status and recipient domain: slow on purpose, to show progress."""
    emails = list(Email.objects.values_list("status", "to"))
    by_status: Counter[str] = Counter()
    by_domain: Counter[str] = Counter()
    for done, (status, to) in enumerate(emails, start=1):
        by_status[status] += 1
        by_domain[to.rpartition("@")[2]] += 1
        if progress is not None:
            progress(done, len(emails))
    return {"total": len(emails), "by_status": dict(by_status), "by_domain": dict(by_domain)}
