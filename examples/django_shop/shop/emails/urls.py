from __future__ import annotations

from django.urls import path

from . import views

app_name = "emails"
urlpatterns = [
    path("report/", views.report_start, name="report-start"),
    path("tasks/<str:task_id>/", views.task_status, name="task-status"),
]
