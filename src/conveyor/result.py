"""Result handles, where Celery's ``celery.result`` offers them.

One task's live in ``conveyor.taskresult`` (``AsyncResult``) and ``conveyor.eagerresult``
(``EagerResult``), several tasks' (``ResultSet``, ``GroupResult``) in
``conveyor.groupresult``, which builds on them.
"""

from __future__ import annotations

from .eagerresult import EagerResult
from .groupresult import GroupResult, ResultSet, result_from_tuple
from .joins import allow_join_result
from .taskresult import AnyResult, AsyncResult

__all__ = [
    "AnyResult",
    "AsyncResult",
    "EagerResult",
    "GroupResult",
    "ResultSet",
    "allow_join_result",
    "result_from_tuple",
]
