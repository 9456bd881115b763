from __future__ import annotations

from django.apps import AppConfig


class EmailsConfig(AppConfig):
    name = "shop.emails"
    label = "emails"
    default_auto_field = "django.db.models.BigAutoField"
