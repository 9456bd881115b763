"""``celery.schedules``: periodic schedules live in ``conveyor.beat``."""

from celery._bridge import bind

bind(
    globals(),
    {
        name: ("conveyor.beat.schedules", "conveyor.beat")
        for name in (
            "ParseException",
            "crontab",
            "crontab_parser",
            "maybe_schedule",
            "schedule",
            "solar",
        )
    },
)
