"""The Django integration's tests, run once on SQLite and once on PostgreSQL.

Django is set up here, at collection, with the shop example's settings plus a test app
(``contrib_django.settings``); nothing of it leaks to other tests: the environment
variables used to configure it are removed again, and each test makes the project's app
current only for its own duration.

``database`` (session-scoped, parametrized, autouse) points Django at a fresh test
database of each kind in turn: SQLite always, PostgreSQL when a server answers on
127.0.0.1:5432 (with CI set, a missing server fails instead of skipping). Tests run on
committed data (workers are other processes), and every table of the project is emptied
after each test. ``worker`` is a real ``python -m conveyor worker --beat`` subprocess,
one per database, found through DJANGO_SETTINGS_MODULE alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "django_shop"
TESTS = ROOT / "tests"
WORK = Path(tempfile.mkdtemp(prefix="conveyor-django-tests-"))
BROKER_URL = f"sqlite:///{WORK / 'broker.db'}"
PG = {"HOST": "127.0.0.1", "PORT": 5432, "USER": "postgres"}

for path in (str(SHOP), str(TESTS)):
    if path not in sys.path:
        sys.path.insert(0, path)

_SETUP_ENV = {
    "DJANGO_SETTINGS_MODULE": "contrib_django.settings",
    "SHOP_DATABASE_URL": f"sqlite:///{WORK / 'unused.sqlite3'}",
    "SHOP_BROKER_URL": BROKER_URL,
}


def _setup_django() -> None:
    import django

    import conveyor.current

    conveyor.current.set_current(None)  # the project's app must be its own, not another test's
    saved = {name: os.environ.get(name) for name in _SETUP_ENV}
    os.environ.update(_SETUP_ENV)
    try:
        django.setup()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_setup_django()

from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.core import mail  # noqa: E402
from django.core.management.color import no_style  # noqa: E402
from django.db import OperationalError, connection, connections  # noqa: E402

from conveyor import Conveyor  # noqa: E402
from conveyor.app import current_app  # noqa: E402
from conveyor.contrib.django import get_app  # noqa: E402


def adopt_contract(filename: str, fixture: str, namespace: dict[str, Any], name: str) -> ModuleType:
    """Load a contract test module from tests/unit and put its tests that take ``fixture``
    into ``namespace`` (a test module's globals), so they run there with its fixtures."""
    spec = importlib.util.spec_from_file_location(name, TESTS / "unit" / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for test_name, test in vars(module).items():
        if test_name.startswith("test_") and fixture in inspect.signature(test).parameters:
            namespace[test_name] = test
    return module


def postgres_answers() -> bool:
    with contextlib.suppress(OSError), socket.create_connection((PG["HOST"], PG["PORT"]), 1):
        return True
    return False


def _config(kind: str) -> dict[str, Any]:
    if kind == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(WORK / "main.sqlite3"),
            "TEST": {"NAME": str(WORK / "test.sqlite3")},
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        **PG,
        "TEST": {"NAME": f"test_conveyor_django_{os.getpid()}"},
    }


def _use(config: dict[str, Any]) -> None:
    """Point the default connection at ``config`` (Django reads DATABASES only once)."""
    connections.close_all()
    databases = {"default": config}
    settings.DATABASES = databases
    connections._settings = connections.configure_settings(databases)  # type: ignore[attr-defined]
    connections.settings = connections._settings  # type: ignore[attr-defined]
    with contextlib.suppress(AttributeError):
        del connections["default"]
    ContentType.objects.clear_cache()


@dataclass
class Database:
    kind: str
    name: str
    url: str
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"], autouse=True)
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    kind = request.param
    if kind == "postgresql" and not postgres_answers():
        reason = "no PostgreSQL server answers on 127.0.0.1:5432"
        if os.environ.get("CI"):
            pytest.fail(reason + ", and CI must run these tests")
        pytest.skip(reason)
    config = _config(kind)
    _use(config)
    original = config["NAME"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    if kind == "sqlite":
        url = f"sqlite:///{name}"
    else:
        url = f"postgres://{PG['USER']}@{PG['HOST']}:{PG['PORT']}/{name}"
    get_app().broker.purge()
    try:
        yield Database(kind, name, url, {"SHOP_DATABASE_URL": url})
    finally:
        connections.close_all()
        if kind == "postgresql":
            _disconnect_others(name)
        connection.creation.destroy_test_db(original, verbosity=0)


def _disconnect_others(name: str) -> None:
    """Close leftover connections to our own test database, so it can be dropped."""
    with connection._nodb_cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )


_FLUSHED_APPS = {"conveyor", "emails", "testapp"}
_FLUSHED_TABLES = {"auth_user", "auth_user_groups", "auth_user_user_permissions"}
_FLUSHED_TABLES |= {"django_admin_log", "django_session"}


def flush() -> None:
    tables = [
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.app_label in _FLUSHED_APPS or model._meta.db_table in _FLUSHED_TABLES
    ]
    statements = connection.ops.sql_flush(no_style(), tables, allow_cascade=True)
    for attempt in range(5):
        try:
            connection.ops.execute_sql_flush(statements)
            return
        except OperationalError as exc:
            # PostgreSQL breaks a deadlock with a worker process that is still closing its
            # connection by aborting one side; this side tries again.
            if "deadlock" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.2)


@pytest.fixture(autouse=True)
def project_app(database: Database, request: pytest.FixtureRequest) -> Iterator[Conveyor]:
    """The project's app is current during each test; tables are emptied afterwards, once
    the worker (if the test used it) has acked everything, and so stored every result."""
    previous = current_app()
    app = get_app()
    app.set_current()
    mail.outbox = []
    try:
        yield app
    finally:
        if "worker" in request.fixturenames:
            wait_until(lambda: _idle(app), timeout=20, what="the worker to finish")
        flush()
        previous.set_current()


def _idle(app: Conveyor) -> bool:
    return all(q.ready + q.delayed + q.reserved == 0 for q in app.broker.stats().values())


def wait_until(
    check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


class Worker:
    """``python -m conveyor worker --beat`` with DJANGO_SETTINGS_MODULE and no -A."""

    def __init__(self, database: Database, mail_dir: Path) -> None:
        self.log_path = WORK / f"worker-{database.kind}.log"
        self.mail_dir = mail_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        env.update(
            database.env,
            DJANGO_SETTINGS_MODULE="contrib_django.settings",
            PYTHONPATH=os.pathsep.join([str(SHOP), str(TESTS), env.get("PYTHONPATH", "")]),
            SHOP_BROKER_URL=BROKER_URL,
            SHOP_EMAIL_BACKEND="contrib_django.mail.FlakyBackend",
            SHOP_EMAIL_FILE_PATH=str(mail_dir),
            SHOP_EMAIL_RETRY_COUNTDOWN="0.1",
            SHOP_REPORT_STEP_SECONDS="0.15",
        )
        command = [sys.executable, "-m", "conveyor", "worker", "-c", "2", "--beat", "-l", "INFO"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=WORK,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sent_mail(self) -> str:
        return (
            "".join(p.read_text() for p in sorted(self.mail_dir.glob("*")))
            if self.mail_dir.exists()
            else ""
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@pytest.fixture(scope="module")
def worker(database: Database) -> Iterator[Worker]:
    """A worker with beat for the tests of one module: stopped at the module's end, so its
    scheduler never runs the entries that later modules write to the store with past times
    (a store test's "nightly", last run in 2024, was due to it at once and ran again)."""
    mail_dir = WORK / f"mail-{database.kind}"
    running = Worker(database, mail_dir)
    try:
        app = get_app()
        result = app.send_task("testapp.ping")
        try:
            assert result.get(timeout=30) == "pong"
        except Exception as exc:
            raise AssertionError(f"the worker did not answer: {exc}\n{running.log()}") from exc
        yield running
    finally:
        running.stop()
        shutil.rmtree(mail_dir, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test that used the worker gets the end of the worker's log in its report."""
    report = yield
    running = getattr(item, "funcargs", {}).get("worker")
    if isinstance(running, Worker) and report.failed:
        tail = "\n".join(running.log().splitlines()[-80:])
        report.sections.append(("worker log (last lines)", tail or "(empty)"))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(WORK, ignore_errors=True)
