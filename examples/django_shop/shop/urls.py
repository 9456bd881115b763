from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from conveyor.contrib.django.dashboard import dashboard_urls

urlpatterns = [
    path("admin/", admin.site.urls),
    path("emails/", include("shop.emails.urls")),
    path("tasks/", include(dashboard_urls())),  # Conveyor's dashboard, for staff users
]
