"""Exponential backoff, the countdown Celery's ``celery.utils.time`` helper computes.

``get_exponential_backoff_interval`` is what ``autoretry_for`` with ``retry_backoff``
waits between attempts; tasks that retry by hand (``self.retry(countdown=...)``) import it
to wait the same way.
"""

from __future__ import annotations

import random
from typing import overload

__all__ = ["get_exponential_backoff_interval"]


@overload
def get_exponential_backoff_interval(
    factor: int, retries: int, maximum: int, full_jitter: bool = False
) -> int: ...
@overload
def get_exponential_backoff_interval(
    factor: float, retries: int, maximum: float, full_jitter: bool = False
) -> float: ...


def get_exponential_backoff_interval(
    factor: float, retries: int, maximum: float, full_jitter: bool = False
) -> float:
    """``factor * 2 ** retries`` seconds, at most ``maximum``, never negative.

    With ``full_jitter`` a random value from 0 up to that: whole seconds when the
    arguments are whole numbers (as Celery's), any fraction otherwise. Spreading the
    retries keeps many failed tasks from all coming back at the same moment.
    """
    countdown: float = min(maximum, factor * (2**retries))
    if full_jitter:
        if isinstance(countdown, int):
            countdown = random.randrange(max(countdown, 0) + 1)
        else:
            countdown = random.uniform(0, countdown)
    return max(0, countdown)
