"""Settings of the shop example. Every ``SHOP_*`` environment variable is for trying it
out against another database, broker or mail server (the tests use them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def database(url: str) -> dict[str, Any]:
    """``sqlite:///path`` or ``postgres://user@host:port/name`` as a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path[1:]),  # sqlite:///relative, sqlite:////absolute
            # Worker processes write too: wait for locks, and take the write lock up front.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "django-insecure-example-only-do-not-deploy")
DEBUG = os.environ.get("SHOP_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "conveyor.contrib.django",
    "shop.emails",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": database(os.environ.get("SHOP_DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

EMAIL_BACKEND = os.environ.get(
    "SHOP_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
EMAIL_FILE_PATH = os.environ.get("SHOP_EMAIL_FILE_PATH", str(BASE_DIR / "sent-mail"))
EMAIL_HOST = os.environ.get("SHOP_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("SHOP_EMAIL_PORT", "25"))
EMAIL_TIMEOUT = 5
DEFAULT_FROM_EMAIL = "shop@example.com"

# Conveyor: every CONVEYOR_* setting is one of Conveyor's settings, upper-cased.
CONVEYOR_BROKER_URL = os.environ.get("SHOP_BROKER_URL", f"sqlite:///{BASE_DIR / 'conveyor.db'}")
CONVEYOR_RESULT_BACKEND = "django://"  # results in this database, listed in the admin

# The shop's own knobs: how long to wait before retrying an email, how slow the report is.
SHOP_EMAIL_RETRY_COUNTDOWN = float(os.environ.get("SHOP_EMAIL_RETRY_COUNTDOWN", "5"))
SHOP_REPORT_STEP_SECONDS = float(os.environ.get("SHOP_REPORT_STEP_SECONDS", "0.2"))
