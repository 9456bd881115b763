"""Found by autodiscovery though the package does not import it; also Django tasks
(``@task`` of django.tasks, or of the django_tasks backport before Django 6)."""

from __future__ import annotations

import asyncio
from typing import Any

from conveyor import shared_task

try:
    from django.tasks import TaskContext, task
except ImportError:  # Django < 6
    from django_tasks import TaskContext, task


@shared_task(name="testapp.discovered")
def discovered() -> str:
    return "found"


@task
def add(a: int, b: int) -> int:
    return a + b


@task(takes_context=True)
def attempt(context: TaskContext, label: str) -> dict[str, Any]:
    return {"label": label, "attempt": context.attempt, "id": context.task_result.id}


@task
def explode() -> None:
    raise ValueError("kaboom")


@task(priority=50, queue_name="default")
async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x
