"""Helpers for the integration tests: real worker processes, the CLI, and polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

APPS_DIR = Path(__file__).resolve().parent / "apps"
APP_SPEC = "sample_tasks:app"

T = TypeVar("T")

DEFAULT_TIMEOUT = 15.0
"""Upper bound for anything the tests wait for; only reached when something is broken."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll until ``predicate()`` is truthy and return it; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Ticker:
    """A coroutine that ticks every 5 ms on the running loop and opens ``gate`` (a file) at
    its 20th tick: a task waiting for the gate ends only while the loop keeps running."""

    def __init__(self, gate: Path) -> None:
        self.gate = gate
        self.ticks = 0

    async def run(self) -> None:
        while True:
            self.ticks += 1
            if self.ticks == 20:
                self.gate.touch()
            await asyncio.sleep(0.005)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw.rpartition(")")[2].split()


def signal_set(pid: int, field: str, signum: int) -> bool:
    """Whether ``signum`` is in a signal mask of /proc/PID/status (SigCgt, SigIgn, ShdPnd...)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return False
    for line in lines:
        if line.startswith(field + ":"):
            return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


def waiting_in_select(pid: int) -> bool:
    """Whether the process is blocked in epoll_wait (the supervisor's idle select())."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text().strip() == "do_epoll_wait"
    except (FileNotFoundError, ProcessLookupError):
        return False


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live processes in a process group (a worker's supervisor and its children)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def children_of(pid: int) -> list[int]:
    """Live direct children of a process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def base_env(broker_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for worker and CLI processes: no stray CONVEYOR_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    pythonpath = [str(APPS_DIR)]
    if env.get("PYTHONPATH"):
        pythonpath.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    env["PYTHONUNBUFFERED"] = "1"
    env["CONVEYOR_BROKER_URL"] = broker_url
    env.pop("SAMPLE_TASKS_LATE", None)
    env.update(extra or {})
    return env


class WorkerProcess:
    """One ``conveyor worker`` subprocess in its own session, its output in a log file."""

    def __init__(
        self,
        name: str,
        args: Iterable[str],
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
        app_spec: str = APP_SPEC,
    ) -> None:
        self.name = name
        self.hostname = f"{name}@integration"
        self.log_path = log_path
        self.argv = [
            sys.executable,
            "-m",
            "conveyor",
            "worker",
            "-A",
            app_spec,
            "-l",
            "INFO",
            "-n",
            self.hostname,
            *args,
        ]
        self._log_file = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for_log(self, needle: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Wait until the log contains ``needle``; fail early if the worker exits."""

        def seen() -> bool:
            if needle in self.log():
                return True
            if not self.running():
                raise AssertionError(
                    f"worker {self.name} exited with {self.proc.returncode} before logging "
                    f"{needle!r}:\n{self.log()}"
                )
            return False

        wait_until(seen, timeout, what=f"{needle!r} in the log of worker {self.name}")
        return self.log()

    @property
    def prefork(self) -> bool:
        return "-P" not in self.argv or "prefork" in self.argv

    @property
    def concurrency(self) -> int:
        return int(self.argv[self.argv.index("-c") + 1]) if "-c" in self.argv else 1

    @property
    def processes(self) -> int:
        """Child processes: one per slot under prefork, one for the threads and solo pools."""
        return self.concurrency if self.prefork else 1

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """The banner (logged once the app and its tasks are imported) and settled children."""
        self.wait_for_log(f"conveyor worker {self.hostname}", timeout)
        self.wait_children_settled(timeout)

    def children(self) -> list[int]:
        return children_of(self.pid)

    def wait_children_settled(self, timeout: float = DEFAULT_TIMEOUT) -> list[int]:
        """Wait for every child to have set up its own signal handling.

        A child ignores SIGINT just before it installs its warm-stop handler; waiting for
        that gives tests a worker whose children are past start-up, so a stop signal finds
        them consuming rather than still being born.
        """

        def settled() -> list[int]:
            children = self.children()
            if len(children) < self.processes:
                return []
            if all(signal_set(pid, "SigIgn", signal.SIGINT) for pid in children):
                return children
            return []

        return wait_until(settled, timeout, interval=0.005, what=f"children of {self.name}")

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def kill_group(self) -> None:
        """SIGKILL the supervisor and every child at once, as a crash or OOM kill would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.wait(DEFAULT_TIMEOUT)
        wait_until(lambda: not group_members(self.pid), what=f"worker {self.name} to be gone")

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM (warm shutdown); SIGKILL the whole group if it is not gone after ``grace``."""
        if self.running():
            try:
                self.signal(signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        leftovers = group_members(self.pid)
        if leftovers or self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(DEFAULT_TIMEOUT)
            wait_until(lambda: not group_members(self.pid), what=f"worker {self.name} gone")
        self.returncode = self.proc.returncode
        if not self._log_file.closed:
            self._log_file.close()
        return self.returncode


class Workers:
    """Starts workers for one test and guarantees every one is gone afterwards."""

    def __init__(self, tmp_path: Path, broker_url: str) -> None:
        self.tmp_path = tmp_path
        self.broker_url = broker_url
        self.started: list[WorkerProcess] = []

    def start(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        ready: bool = True,
        app: str = APP_SPEC,
    ) -> WorkerProcess:
        """``conveyor worker -A sample_tasks:app -n wN@integration ARGS`` (-c 1 unless given)."""
        name = f"w{len(self.started) + 1}"
        argv = list(args)
        if "-c" not in argv and "--concurrency" not in argv:
            argv += ["-c", "1"]
        worker = WorkerProcess(
            name,
            argv,
            base_env(self.broker_url, env),
            cwd=self.tmp_path,
            log_path=self.tmp_path / f"worker-{name}.log",
            app_spec=app,
        )
        self.started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    def stop_all(self) -> list[str]:
        """Stop every worker; return the ones that had to be killed."""
        problems = []
        for worker in self.started:
            was_running = worker.running()
            worker.stop()
            if was_running and worker.returncode not in (0, None):
                problems.append(f"{worker.name} exited with {worker.returncode}")
        return problems

    def logs(self) -> list[tuple[str, str]]:
        return [(w.name, w.log()) for w in self.started if w.log_path.exists()]


def run_cli(
    broker_url: str,
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """``python -m conveyor ARGS`` with the sample app importable; never raises on exit code."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        cwd=cwd,
        env=base_env(broker_url, env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def extra_tasks(name: str, sample_tasks: Any) -> Iterator[Any]:
    """Another tasks module (registered on the sample app) imported afresh for one test."""
    sys.modules.pop(name, None)
    import importlib

    module = importlib.import_module(name)
    try:
        if module.app is not sample_tasks.app:
            raise AssertionError(f"{name} did not bind to this test's sample app")
        yield module
    finally:
        sys.modules.pop(name, None)


@contextlib.contextmanager
def project_afresh(name: str) -> Iterator[Any]:
    """A test project's module (apps/NAME.py, with its own app) imported anew on the broker
    CONVEYOR_BROKER_URL names; its app is closed and the module forgotten afterwards."""
    import importlib

    sys.modules.pop(name, None)
    module = importlib.import_module(name)
    try:
        yield module
    finally:
        module.app.close()
        sys.modules.pop(name, None)


@contextlib.contextmanager
def project_on(url: str, name: str, monkeypatch: Any, *unset: str) -> Iterator[Any]:
    """``project_afresh(name)`` with its broker at ``url``; ``unset``: environment variables
    the module reads that the test must not inherit from an earlier one."""
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    for variable in unset:
        monkeypatch.delenv(variable, raising=False)
    with project_afresh(name) as module:
        yield module


@contextlib.contextmanager
def workers_for(request: Any, tmp_path: Path, url: str) -> Iterator[Workers]:
    """A test's pool of worker processes, stopped when it ends; a failing test shows their
    logs (conftest's ``pytest_runtest_makereport``)."""
    workers = Workers(tmp_path, url)
    request.node._conveyor_workers = workers
    try:
        yield workers
    finally:
        workers.stop_all()


def start_worker_with(
    workers: Workers, module: str, marker: str, *args: str, env: Mapping[str, str] | None = None
) -> WorkerProcess:
    """A ``conveyor worker`` that also imports ``module`` (include setting); ready when its
    banner lists ``marker``."""
    worker = workers.start(*args, env={"CONVEYOR_INCLUDE": module, **(env or {})})
    if marker not in worker.log():
        raise AssertionError(f"worker {worker.name} did not load {module}:\n{worker.log()}")
    return worker
