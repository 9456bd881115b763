"""The app a compat worker process loads (``conveyor worker -A harness.worker_app:app``).

Rebuilt from what the test process's fixtures chose (passed in COMPAT_* variables): the
same configuration, the task modules of ``celery_includes`` and the classes of
``celery_class_tasks``, registered as Celery's ``celery_session_worker`` registers them.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from typing import Any

from . import bridges
from .appconfig import make_app

__all__ = ["app"]


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    found: Any = importlib.import_module(module)
    for part in attr.split("."):
        found = getattr(found, part)
    return found


bridges.apply()
app = make_app("celery.tests", json.loads(os.environ.get("COMPAT_CONFIG", "{}")), {})
app.set_current()
for _module in json.loads(os.environ.get("COMPAT_INCLUDES", "[]")):
    importlib.import_module(_module)
for _path in json.loads(os.environ.get("COMPAT_CLASS_TASKS", "[]")):
    try:
        app.register_task(_load(_path))
    except Exception:
        logging.getLogger("compat").exception("could not register the class task %s", _path)
