from __future__ import annotations

from django.db import models


class Email(models.Model):
    class Status(models.TextChoices):
        READY = "READY", "Ready"
        SENDING = "SENDING", "Sending"
        SENT = "SENT", "Sent"
        FAILED = "FAILED", "Failed"

    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.READY, db_index=True
    )
    to = models.EmailField()
    subject = models.CharField(max_length=255)
    plain_text = models.TextField()
    html = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.subject} -> {self.to} ({self.status})"
