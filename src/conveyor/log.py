"""Logging: task loggers whose every line names the task and its id, and the worker's format."""

from __future__ import annotations

import logging
import sys

from . import signals
from .request import current_request

__all__ = ["FORMAT", "get_logger", "get_task_logger", "setup_logging"]

TASK_LOGGER = "conveyor.task"


class _TaskContext(logging.Filter):
    """Prefix each record with ``name[id]:`` of the task running in this thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request()
        record.task_name = request.task if request else None
        record.task_id = request.id if request else None
        if request is not None and not getattr(record, "_conveyor_prefixed", False):
            record.msg = f"{request.task}[{request.id}]: {record.msg}"
            record._conveyor_prefixed = True
        return True


_filter = _TaskContext()


def get_task_logger(name: str) -> logging.Logger:
    """A logger for task modules: ``logger = get_task_logger(__name__)``."""
    logger = logging.getLogger(f"{TASK_LOGGER}.{name}")
    if _filter not in logger.filters:
        logger.addFilter(_filter)
    return logger


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s %(process)d] %(message)s"
"""The worker's format: time, level, process, message."""


def setup_logging(level: str | int = "INFO") -> None:
    """Log to stderr in ``FORMAT``; unless a ``setup_logging`` receiver is connected: then
    logging is the application's, and no handler of ours is added (as in Celery)."""
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    options = {"loglevel": level, "logfile": None, "format": FORMAT, "colorize": False}
    if signals.setup_logging.send(sender=None, **options):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    signals.after_setup_logger.send(sender=None, logger=root, **options)
    task_logger = logging.getLogger(TASK_LOGGER)
    signals.after_setup_task_logger.send(sender=None, logger=task_logger, **options)
