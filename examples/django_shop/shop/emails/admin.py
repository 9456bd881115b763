from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from .models import Email
from .services import emails_send


@admin.register(Email)
class EmailAdmin(admin.ModelAdmin):
    list_display = ["subject", "to", "status", "created_at", "sent_at"]
    list_filter = ["status"]
    search_fields = ["to", "subject"]
    actions = ["send"]

    @admin.action(description="Send the selected emails")
    def send(self, request: HttpRequest, queryset: Any) -> None:
        ids = emails_send(queryset)
        self.message_user(request, f"{len(ids)} email(s) queued for sending", messages.SUCCESS)
