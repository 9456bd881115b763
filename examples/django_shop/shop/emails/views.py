"""Start the report (a long task) and follow it: the endpoint returns its PROGRESS."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from conveyor import current_app

from .tasks import emails_report as emails_report_task


@require_POST
def report_start(request: HttpRequest) -> JsonResponse:
    result = emails_report_task.delay()
    status_url = reverse("emails:task-status", args=[result.id])
    return JsonResponse({"task_id": result.id, "status_url": status_url}, status=202)


@require_GET
def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    record = current_app().results.read(task_id)  # state and meta in one read, consistent
    state = record.status if record is not None else "PENDING"
    info = record.result if record is not None else None
    body: dict[str, object] = {"task_id": task_id, "state": state}
    if state == "PROGRESS" and isinstance(info, dict):
        current, total = info.get("current", 0), info.get("total") or 1
        body["progress"] = {"current": current, "total": total, "percent": 100 * current // total}
    elif state == "SUCCESS":
        body["result"] = info
    elif state == "FAILURE":
        body["error"] = str(info)
    return JsonResponse(body)
