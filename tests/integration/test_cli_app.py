"""The command line as Celery's is used: ``conveyor -A proj worker`` (Celery's order),
``-A`` naming a package, ``module:attr`` or ``module.attr``, ``-l`` with its fixed
choices in any case, Celery's worker flags that mean nothing here, and a file path given
to ``-A`` answered with one line instead of a traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from .support import DEFAULT_TIMEOUT, base_env, wait_until

PROJECT = {
    "proj/__init__.py": """
        from .celery import app as celery_app

        __all__ = ("celery_app",)
    """,
    "proj/celery.py": """
        import os

        from conveyor import Conveyor

        app = Conveyor("proj", broker=os.environ["CONVEYOR_BROKER_URL"])
        app.autodiscover_tasks(["proj.billing"])
    """,
    "proj/billing/__init__.py": "",
    "proj/billing/tasks.py": """
        from conveyor import shared_task


        @shared_task
        def invoice_total(amounts):
            return sum(amounts)
    """,
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A Celery-style project package in the test's directory (where the CLI runs)."""
    for path, text in PROJECT.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    return tmp_path


@pytest.fixture
def sender(broker_url: str) -> Iterator[Conveyor]:
    app = Conveyor("sender", broker=broker_url, set_as_current=False)
    yield app
    app.close()


@contextlib.contextmanager
def running(argv: list[str], cwd: Path, broker_url: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m conveyor ARGV`` as a worker: started, then SIGTERM (SIGKILL if needed)."""
    log = cwd / "worker.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", *argv],
            cwd=cwd,
            env=base_env(broker_url),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    proc.log = log  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(DEFAULT_TIMEOUT)


def log_of(proc: subprocess.Popen[str]) -> str:
    return proc.log.read_text()  # type: ignore[attr-defined]


def test_celery_order_with_a_package_discovers_and_runs_its_tasks(project, broker_url, sender):
    argv = ["-A", "proj", "worker", "-l", "info", "-c", "1", "-n", "celery-order@test"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-O", "fair"]
    with running(argv, project, broker_url) as worker:
        wait_until(lambda: "conveyor worker celery-order@test" in log_of(worker), what="banner")
        result = sender.send_task("proj.billing.tasks.invoice_total", ([120, 30],))
        assert result.get(timeout=DEFAULT_TIMEOUT) == 150
        log = log_of(worker)
    assert "proj.billing.tasks.invoice_total" in log  # found by autodiscover_tasks
    assert "--without-gossip --without-mingle --without-heartbeat -O fair" in log
    assert "no effect here" in log
    assert worker.returncode == 0


@pytest.mark.parametrize("spec", ["proj", "proj.celery", "proj.celery:app", "proj.celery.app"])
def test_every_form_of_dash_a_finds_the_app(project, cli, spec, sender):
    sent = cli("-A", spec, "call", "proj.billing.tasks.invoice_total", "--args", "[[1, 2]]")
    assert sent.returncode == 0, sent.stderr
    assert sender.AsyncResult(sent.stdout.strip()).state == "PENDING"


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "error", "critical", "FATAL"])
def test_loglevel_takes_its_choices_in_any_case(project, cli, level):
    shown = cli("-A", "proj", "beat", "-l", level, "list")
    assert shown.returncode == 0, shown.stderr


def test_a_loglevel_outside_the_choices_is_a_usage_error(project, cli):
    started = cli("-A", "proj", "worker", "-l", "verbose", timeout=DEFAULT_TIMEOUT)
    assert started.returncode == 2
    assert "'verbose' is not one of" in started.stderr
    assert "'debug', 'info', 'warning', 'error', 'critical', 'fatal'" in started.stderr


@pytest.mark.parametrize("spec", ["../proj", "proj/celery.py", "./proj"])
def test_a_path_given_to_dash_a_is_one_line(project, cli, spec):
    started = cli("-A", spec, "worker", timeout=DEFAULT_TIMEOUT)
    assert started.returncode == 2
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert lines[0].startswith(f"Error: -A {spec}: not a module name")
    assert "Traceback" not in started.stderr
