"""Celery's small helpers that task modules import from ``celery.utils``."""

from __future__ import annotations

from .ids import new_id

__all__ = ["uuid"]


def uuid() -> str:
    """A new random UUID string, as task ids are made (``celery.utils.uuid``): for a
    ``task_id=`` chosen before sending."""
    return new_id()
