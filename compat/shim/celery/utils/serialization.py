"""``celery.utils.serialization``: Celery's exception wrappers have no counterpart (Conveyor
stores an exception's type and arguments); ``pickle`` is the standard library's, as in Celery."""

import pickle

from celery._bridge import bind

bind(
    globals(),
    {
        "UnpickleableExceptionWrapper": None,
        "get_pickleable_exception": None,
        "get_pickled_exception": None,
    },
)

__all__ = ["pickle"]
