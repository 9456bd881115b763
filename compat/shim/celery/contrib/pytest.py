"""``celery.contrib.pytest``: Celery's pytest fixtures, with real Conveyor workers.

The fixture names, scopes and the fixtures they read are Celery's, so a suite's own
conftest (overriding ``celery_config``, ``celery_includes``, ...) works unchanged. What
differs: the app is a Conveyor app, and a worker is a ``conveyor worker`` process (see
``harness.workers``) rather than a thread of the test process.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from harness.appconfig import make_app
from harness.workers import start_worker

__all__ = [
    "celery_app",
    "celery_class_tasks",
    "celery_config",
    "celery_enable_logging",
    "celery_includes",
    "celery_parameters",
    "celery_session_app",
    "celery_session_worker",
    "celery_worker",
    "celery_worker_parameters",
    "celery_worker_pool",
    "depends_on_current_app",
    "use_celery_app_trap",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "celery(**overrides): override celery configuration for a test case"
    )


def _config(request: pytest.FixtureRequest, celery_config: Mapping[str, Any]) -> dict[str, Any]:
    mark = request.node.get_closest_marker("celery")
    return dict(celery_config, **(mark.kwargs if mark else {}))


@contextmanager
def _test_app(
    request: pytest.FixtureRequest,
    celery_config: Mapping[str, Any],
    celery_parameters: Mapping[str, Any],
) -> Iterator[Any]:
    """The app Celery's ``TestApp`` would be, closed when the fixture ends."""
    app = make_app("celery.tests", _config(request, celery_config), celery_parameters)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture(scope="session")
def use_celery_app_trap() -> bool:
    return False


@pytest.fixture(scope="session")
def celery_enable_logging() -> bool:
    return False


@pytest.fixture(scope="session")
def celery_includes() -> Sequence[str]:
    return ()


@pytest.fixture(scope="session")
def celery_worker_pool() -> str:
    return "solo"


@pytest.fixture(scope="session")
def celery_config() -> Mapping[str, Any]:
    return {}


@pytest.fixture(scope="session")
def celery_parameters() -> Mapping[str, Any]:
    return {}


@pytest.fixture(scope="session")
def celery_worker_parameters() -> Mapping[str, Any]:
    return {}


@pytest.fixture(scope="session")
def celery_class_tasks() -> Sequence[Any]:
    return []


@pytest.fixture(scope="session")
def celery_session_app(
    request: pytest.FixtureRequest,
    celery_config: Mapping[str, Any],
    celery_parameters: Mapping[str, Any],
    celery_enable_logging: bool,
    use_celery_app_trap: bool,
) -> Iterator[Any]:
    with _test_app(request, celery_config, celery_parameters) as app:
        if not use_celery_app_trap:
            app.set_default()
            app.set_current()
        yield app


@pytest.fixture(scope="session")
def celery_session_worker(
    request: pytest.FixtureRequest,
    celery_session_app: Any,
    celery_includes: Sequence[str],
    celery_class_tasks: Sequence[Any],
    celery_worker_pool: str,
    celery_worker_parameters: Mapping[str, Any],
) -> Iterator[Any]:
    config = _config(request, request.getfixturevalue("celery_config"))
    for module in celery_includes:
        importlib.import_module(module)
    for task in celery_class_tasks:
        celery_session_app.register_task(task)
    with start_worker(
        config, celery_includes, celery_class_tasks, celery_worker_pool, celery_worker_parameters
    ) as worker:
        yield worker


@pytest.fixture
def celery_app(
    request: pytest.FixtureRequest,
    celery_config: Mapping[str, Any],
    celery_parameters: Mapping[str, Any],
    celery_enable_logging: bool,
    use_celery_app_trap: bool,
) -> Iterator[Any]:
    with _test_app(request, celery_config, celery_parameters) as app:
        yield app


@pytest.fixture
def celery_worker(
    request: pytest.FixtureRequest,
    celery_app: Any,
    celery_includes: Sequence[str],
    celery_worker_pool: str,
    celery_worker_parameters: Mapping[str, Any],
) -> Iterator[Any]:
    config = _config(request, request.getfixturevalue("celery_config"))
    with start_worker(
        config, celery_includes, (), celery_worker_pool, celery_worker_parameters
    ) as worker:
        yield worker


@pytest.fixture
def depends_on_current_app(celery_app: Any) -> None:
    celery_app.set_current()
