"""Tasks are an interface to the services: fetch by id, call the service, handle retries.

Services are imported inside the tasks (they import these tasks to send them); other
modules import a task with a ``_task`` suffix: ``from .tasks import email_send as
email_send_task``.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from conveyor import Task, get_task_logger, shared_task

from .models import Email

logger = get_task_logger(__name__)


def _email_send_failure(
    self: Task, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
) -> None:
    """Runs once the last retry failed: the email is marked failed."""
    from .services import email_failed

    email_failed(Email.objects.get(id=args[0]))


@shared_task(bind=True, on_failure=_email_send_failure, max_retries=3)
def email_send(self: Task, email_id: int) -> None:
    email = Email.objects.get(id=email_id)

    from .services import email_send

    try:
        email_send(email)
    except Exception as exc:
        logger.warning("Exception occurred while sending email: %s", exc)
        self.retry(exc=exc, countdown=settings.SHOP_EMAIL_RETRY_COUNTDOWN)


@shared_task
def emails_retry_failed() -> int:
    from .services import emails_retry_failed

    return len(emails_retry_failed())


@shared_task(bind=True)
def emails_report(self: Task) -> dict[str, Any]:
    """A long task: reports PROGRESS (current, total) as it goes."""
    from .services import emails_report

    def progress(current: int, total: int) -> None:
        time.sleep(settings.SHOP_REPORT_STEP_SECONDS)
        self.update_state(state="PROGRESS", meta={"current": current, "total": total})

    return emails_report(progress)
