"""Logging: task loggers whose every line names the task and its id, and the worker's format."""

from __future__ import annotations

import logging
import sys

from .request import current_request

__all__ = ["get_logger", "get_task_logger", "setup_logging"]

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


def setup_logging(level: str | int = "INFO") -> None:
    """The worker's format: time, level, process, message."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s %(process)d] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
