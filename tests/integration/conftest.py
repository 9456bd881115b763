"""Fixtures for the integration tests: a private SQLite file per test, the sample tasks
module bound to it, real worker subprocesses and the CLI.

Every worker runs in its own session; teardown sends SIGTERM, then SIGKILLs the whole
process group after a grace period, so no process outlives its test. When a test fails,
the log of each of its workers is attached to the report.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .support import APPS_DIR, Workers, project_on, run_cli, workers_for

if str(APPS_DIR) not in sys.path:
    sys.path.insert(0, str(APPS_DIR))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"_conveyor_report_{report.when}", report)
    workers: Workers | None = getattr(item, "_conveyor_workers", None)
    if workers is not None and report.failed and report.when in ("call", "teardown"):
        for name, text in workers.logs():
            report.sections.append((f"worker {name} log", text or "(empty)"))
    return report


@pytest.fixture
def broker_url(tmp_path: Path) -> str:
    """An absolute SQLite URL for this test only: broker and results share the file."""
    return f"sqlite:///{tmp_path / 'conveyor.db'}"


@pytest.fixture
def tasks(broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The sample tasks module, imported afresh so its app uses this test's file."""
    with project_on(broker_url, "sample_tasks", monkeypatch, "SAMPLE_TASKS_LATE") as module:
        yield module


@pytest.fixture
def app(tasks: ModuleType) -> Any:
    return tasks.app


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where tasks write their marker and log files."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def workers(
    request: pytest.FixtureRequest, tmp_path: Path, broker_url: str, tasks: ModuleType
) -> Iterator[Workers]:
    """``workers.start(*args)`` starts ``conveyor worker`` and waits until it is ready."""
    pool = Workers(tmp_path, broker_url)
    request.node._conveyor_workers = pool
    try:
        yield pool
    finally:
        problems = pool.stop_all()
    call_report = getattr(request.node, "_conveyor_report_call", None)
    if problems and call_report is not None and call_report.passed:
        pytest.fail("warm shutdown at teardown was not clean: " + "; ".join(problems))


@pytest.fixture
def cli(tmp_path: Path, broker_url: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli("call", "sample_tasks.add", ...)`` runs ``python -m conveyor`` on this test's file."""

    def run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run_cli(broker_url, tmp_path, *args, **kwargs)

    return run


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A broker URL of this test's own, on SQLite and on the session's private Redis."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conveyor.db'}"
    pytest.importorskip("redis")
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    return f"{redis_url}?prefix={prefix}"


@pytest.fixture
def rt(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The reliability tasks module (apps/reliability_tasks.py), imported afresh on ``url``."""
    with project_on(url, "reliability_tasks", monkeypatch) as module:
        yield module


@pytest.fixture
def pool(
    request: pytest.FixtureRequest, tmp_path: Path, url: str, rt: ModuleType
) -> Iterator[Workers]:
    """Workers of the reliability tasks app: ``pool.start(..., app="reliability_tasks:app")``."""
    with workers_for(request, tmp_path, url) as workers:
        yield workers
