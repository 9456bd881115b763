"""Result handles, where Celery's ``celery.result`` offers them.

One task's (``AsyncResult``, ``EagerResult``) live in ``conveyor.taskresult``, several
tasks' (``ResultSet``, ``GroupResult``) in ``conveyor.groupresult``, which builds on it.
"""

from __future__ import annotations

from .groupresult import GroupResult, ResultSet, result_from_tuple
from .joins import allow_join_result
from .taskresult import AnyResult, AsyncResult, EagerResult

__all__ = [
    "AnyResult",
    "AsyncResult",
    "EagerResult",
    "GroupResult",
    "ResultSet",
    "allow_join_result",
    "result_from_tuple",
]
