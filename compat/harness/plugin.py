"""The pytest plugin of a compat run (``-p harness.plugin``).

- Marks each test that ``exclusions.py`` names as not applicable (skipped, with the reason),
  and each test Celery itself marks as expected to fail.
- Bounds every test phase with SIGALRM, so one hanging chord cannot eat the run, and stops
  starting tests once the run's deadline has passed (they are reported as not reached).
- Writes one JSON line per test to ``--compat-record``: its outcome and, for a failure, the
  first line of the error, which the runner turns into the table and the failure list.
"""

from __future__ import annotations

import fnmatch
import json
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from exclusions import EXCLUSIONS

from harness import bridges, workers

__all__: list[str] = []

bridges.apply()  # before pytest imports the conftests, which import the task modules

NA_PREFIX = "not applicable: "
LATE_PREFIX = "not reached: "
XFAIL_REASON = "Celery's own suite expects it to fail (xfail)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("compat")
    group.addoption("--compat-record", help="Append one JSON line per test to this file.")
    group.addoption("--compat-broker", default="", help="Broker name, for broker exclusions.")
    group.addoption(
        "--compat-timeout", type=float, default=60.0, help="Seconds a test's call may take."
    )
    group.addoption(
        "--compat-deadline", type=float, default=0.0, help="Epoch time after which no test starts."
    )


def pytest_configure(config: pytest.Config) -> None:
    global _recorder
    path = config.getoption("--compat-record")
    _recorder = Recorder(path) if path else None
    for line in (
        "flaky(reruns, reruns_delay, cause): pytest-rerunfailures (ignored: no reruns here)",
        "timeout(timeout): pytest-timeout (the compat run's own, shorter bound applies)",
    ):
        config.addinivalue_line("markers", line)


def exclusion_reason(nodeid: str, broker: str) -> str | None:
    """The reason ``exclusions.py`` gives for a test id, with or without its parameters."""
    bare = nodeid.partition("[")[0]
    for pattern, brokers, reason in EXCLUSIONS:
        if (not brokers or broker in brokers) and (
            fnmatch.fnmatchcase(nodeid, pattern) or fnmatch.fnmatchcase(bare, pattern)
        ):
            return reason
    return None


def _expected_to_fail(item: pytest.Item) -> bool:
    mark = item.get_closest_marker("xfail")
    if mark is None:
        return False
    conditions = mark.args or (mark.kwargs.get("condition", True),)
    return any(bool(c) for c in conditions if not isinstance(c, str))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    broker = config.getoption("--compat-broker")
    for item in items:
        reason = exclusion_reason(item.nodeid, broker)
        if reason is None and _expected_to_fail(item):
            reason = XFAIL_REASON
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=NA_PREFIX + reason))


class PhaseTimeout(BaseException):
    """A test phase ran past the compat run's bound (a BaseException, so a test's own
    ``except Exception`` cannot swallow it)."""


SETUP_BOUND = 120.0
"""Set-up may start the session's worker process (imports, children) on a busy machine."""
TEARDOWN_BOUND = 60.0
SUBTESTS_FACTOR = 4
"""A test made of subtests gets this many times the bound of one test: Celery's chord
errback tests run seven chords, each waiting 10 s twice to be sure a callback did *not*
run (about 170 s on a busy machine)."""


def _bound(seconds: float, what: str) -> Iterator[Any]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise PhaseTimeout(f"{what} ran past the compat run's bound of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    # Repeats each second after the first expiry: a subtest block that catches the first
    # PhaseTimeout reports it and goes on, and the next one must stop too.
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[Any]:
    deadline = item.config.getoption("--compat-deadline")
    if deadline and time.time() > deadline:
        pytest.skip(LATE_PREFIX + "the run's time budget was spent")
    return (yield from _bound(SETUP_BOUND, "set-up"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[Any]:
    seconds = item.config.getoption("--compat-timeout")
    if "subtests" in getattr(item, "fixturenames", ()):
        seconds *= SUBTESTS_FACTOR
    try:
        return (yield from _bound(seconds, "the test"))
    except PhaseTimeout:
        workers.restart_running()
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[Any]:
    return (yield from _bound(TEARDOWN_BOUND, "teardown"))


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text: str = crash.message
    else:
        text = str(report.longrepr)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "(no message)"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr: Any = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class Recorder:
    """Keeps the worst outcome of each test across its phases (and subtests) and writes it
    when the test's teardown ends, so a run that is killed keeps what it measured."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.outcomes: dict[str, dict[str, str]] = {}
        self.seconds: dict[str, float] = {}

    def add(self, report: pytest.TestReport) -> None:
        current = self.outcomes.get(report.nodeid)
        entry: dict[str, str]
        if current is not None and current["outcome"] in ("failed", "na", "skipped", "late"):
            entry = {}
        elif report.failed:
            phase = "" if report.when == "call" else f"[{report.when}] "
            entry = {"outcome": "failed", "error": phase + _first_line(report)}
        elif report.skipped:
            reason = _skip_reason(report)
            if hasattr(report, "wasxfail"):
                entry = {"outcome": "na", "reason": XFAIL_REASON}
            elif reason.startswith(NA_PREFIX):
                entry = {"outcome": "na", "reason": reason.removeprefix(NA_PREFIX)}
            elif reason.startswith(LATE_PREFIX):
                entry = {"outcome": "late", "reason": reason.removeprefix(LATE_PREFIX)}
            else:
                entry = {"outcome": "skipped", "reason": reason}
        elif report.when == "call":
            entry = {"outcome": "passed"}
        else:
            entry = {}
        if entry:
            self.outcomes[report.nodeid] = entry
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration
        if report.when == "teardown":
            self.write()

    def write(self) -> None:
        with open(self.path, "a", encoding="utf-8") as out:
            for nodeid, entry in self.outcomes.items():
                seconds = round(self.seconds.pop(nodeid, 0.0), 2)
                out.write(json.dumps({"nodeid": nodeid, **entry, "seconds": seconds}) + "\n")
        self.outcomes.clear()


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _recorder is not None and report.failed:
        _recorder.outcomes[report.nodeid] = {
            "outcome": "failed",
            "error": "[collection] " + _first_line(report),  # type: ignore[arg-type]
        }
        _recorder.write()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _recorder is not None:
        _recorder.add(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _recorder is not None:
        _recorder.write()


_recorder: Recorder | None = None
