"""``celery.schedules``: periodic schedules live in ``conveyor.beat``."""

from celery._bridge import bind

bind(
    globals(),
    {
        name: ("conveyor.beat", "conveyor.beat.schedules")
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
