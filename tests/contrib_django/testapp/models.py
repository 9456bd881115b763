from __future__ import annotations

from django.db import models


class Tick(models.Model):
    label = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
