"""Every periodic task of the shop, in one place; run on each deploy:
``python manage.py setup_periodic_tasks``. The schedule in the database becomes exactly
this list, in one transaction (tasks that stay keep their run history)."""

from __future__ import annotations

from conveyor.contrib.django.schedule import Definition, SetupPeriodicTasksCommand

from ...tasks import emails_retry_failed


class Command(SetupPeriodicTasksCommand):
    help = f"""
    Set up the shop's periodic tasks (replacing whatever is in the database):

    - {emails_retry_failed.name}
    """

    def periodic_tasks(self) -> Definition:
        return [
            {
                "name": "Retry failed emails",
                "task": emails_retry_failed,
                # https://crontab.guru/#*/15_*_*_*_* : every 15 minutes
                "cron": {
                    "minute": "*/15",
                    "hour": "*",
                    "day_of_week": "*",
                    "day_of_month": "*",
                    "month_of_year": "*",
                },
                "enabled": True,
            },
        ]
