"""App methods that Celery projects and their test fixtures call: ``app.set_default()`` and
``app.register_task()`` given a task class."""

from __future__ import annotations

import uuid

from conveyor import Task, current_app, shared_task
from conveyor.testing import memory_app, run_until_empty


@shared_task(name="app-api.where")
def where() -> str:
    return str(current_app.main)


def test_set_default_makes_the_app_the_one_shared_tasks_use() -> None:
    first = memory_app(f"first-{uuid.uuid4().hex[:6]}")
    second = memory_app(f"second-{uuid.uuid4().hex[:6]}")
    assert current_app() is second
    first.set_default()
    assert current_app() is first
    result = where.delay()
    run_until_empty(first)
    assert result.get(timeout=1) == first.main


def test_register_task_takes_the_class_as_celerys_fixtures_pass_it() -> None:
    app = memory_app(f"classes-{uuid.uuid4().hex[:6]}")

    class CountWords(Task):  # type: ignore[type-arg]
        name = f"app-api.count_words.{uuid.uuid4().hex[:6]}"

        def run(self, text: str) -> int:
            return len(text.split())

    registered = app.register_task(CountWords)
    assert isinstance(registered, CountWords)
    assert app.tasks[CountWords.name] is registered
    result = registered.delay("one two three")
    run_until_empty(app)
    assert result.get(timeout=1) == 3


def test_the_backends_chord_guard_lets_chords_through() -> None:
    from conveyor import chord

    app = memory_app(f"guard-{uuid.uuid4().hex[:6]}")

    @app.task(name=f"app-api.double.{uuid.uuid4().hex[:6]}")
    def double(x: int) -> int:
        return 2 * x

    @app.task(name=f"app-api.total.{uuid.uuid4().hex[:6]}")
    def total(values: list[int]) -> int:
        return sum(values)

    app.backend.ensure_chords_allowed()  # as Celery code checks before sending a chord
    result = chord(double.s(i) for i in range(3))(total.s())
    run_until_empty(app)
    assert result.get(timeout=1) == 6
