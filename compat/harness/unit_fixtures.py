"""Fixtures for Celery's unit tests, in place of t/unit/conftest.py (run with --noconftest).

Celery's unit conftest is mostly about its own internals (mocked backends, thread and
logging sanity checks). What the behaviour tests need from it is an app per test, set on
the test class as ``self.app`` with an ``add`` task, as Celery's ``test_cases_shortcuts``
does; that is what this plugin gives, on Conveyor's in-memory broker and results.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

__all__ = ["app", "celery_config", "test_cases_shortcuts"]


@pytest.fixture(scope="session")
def celery_config() -> Mapping[str, Any]:
    """Celery's unit config keeps broker and results in memory; so does this one."""
    return {"broker_url": "memory://", "result_backend": "memory://"}


@pytest.fixture
def app(celery_app: Any) -> Iterator[Any]:
    celery_app.set_current()
    yield celery_app


@pytest.fixture(autouse=True)
def test_cases_shortcuts(request: pytest.FixtureRequest, app: Any) -> Iterator[None]:
    if request.instance is not None:

        @app.task
        def add(x: Any, y: Any) -> Any:
            return x + y

        request.instance.app = app
        request.instance.add = add
    yield
    if request.instance is not None:
        request.instance.app = None
