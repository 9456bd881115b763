"""The shop's settings plus a test app, a mail backend that can fail, and Django's tasks
framework on Conveyor. The database is chosen by the conftest (SQLite, PostgreSQL)."""

from __future__ import annotations

import os

from shop.settings import *  # noqa: F403
from shop.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "contrib_django.testapp"]
EMAIL_BACKEND = os.environ.get(
    "SHOP_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend"
)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
TASKS = {
    "default": {
        "BACKEND": "conveyor.contrib.django.task_backend.ConveyorTaskBackend",
        "QUEUES": [],
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"conveyor": {"handlers": ["console"], "level": "WARNING"}},
}
