"""Real ``conveyor worker`` processes on Redis, for the tests that need a redis-server of
their own (to kill it, or to give it a password).

``sample_tasks`` is bound to SQLite, so these workers run ``redis_fault_tasks``, a module
written into the test's directory, on the URL given (``broker_lease=2``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from .support import DEFAULT_TIMEOUT, children_of, group_members, run_cli, wait_until

__all__ = ["APP_MODULE", "APP_SOURCE", "Worker", "cli", "write_app"]

APP_MODULE = "redis_fault_tasks"
APP_SOURCE = '''
"""Tasks for the Redis tests with real workers (written by tests/integration/redis_support.py)."""

import json
import os
import time

from conveyor import Conveyor

app = Conveyor("redis-faults", broker=os.environ["REDIS_FAULTS_URL"], broker_lease=2)


def _record(path, **fields):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(fields) + "\\n")


@app.task(bind=True)
def hold(self, log_path, gate):
    """Log a start line, wait for the gate file, log a done line; return this pid."""
    info = {"pid": os.getpid(), "delivery_count": self.request.delivery_count,
            "hostname": self.request.hostname}
    _record(log_path, event="start", **info)
    deadline = time.monotonic() + 30
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("gate never opened")
        time.sleep(0.01)
    _record(log_path, event="done", **info)
    return info


@app.task
def work(i):
    time.sleep(0.004)
    return i
'''


class Worker:
    """``conveyor worker -A redis_fault_tasks:app`` in its own session, logging to a file."""

    def __init__(self, name: str, url: str, workdir: Path, *args: str) -> None:
        self.name = name
        self.hostname = f"{name}@redis-faults"
        self.log_path = workdir / f"worker-{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env["REDIS_FAULTS_URL"] = url
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "-A", f"{APP_MODULE}:app",
             "-l", "INFO", "-n", self.hostname, "-c", "1", *args],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> Worker:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited early:\n{self.log()}")
            return f"conveyor worker {self.hostname}" in self.log() and bool(children_of(self.pid))

        wait_until(ready, what=f"worker {self.name} to start")
        return self

    def signal_group(self, signum: int) -> None:
        os.killpg(self.pid, signum)

    def kill_group(self) -> None:
        self.signal_group(signal.SIGKILL)
        self.proc.wait(DEFAULT_TIMEOUT)
        wait_until(lambda: not group_members(self.pid), what=f"worker {self.name} gone")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.signal_group(signal.SIGCONT)
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if group_members(self.pid) or self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(DEFAULT_TIMEOUT)
        self._log.close()


def write_app(workdir: Path) -> Path:
    """Write the tasks module into ``workdir`` (the workers' working directory)."""
    (workdir / f"{APP_MODULE}.py").write_text(APP_SOURCE)
    return workdir


def cli(url: str, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m conveyor -A redis_fault_tasks:app ARGS`` on ``url``."""
    env = {"REDIS_FAULTS_URL": url}
    return run_cli(url, workdir, "-A", f"{APP_MODULE}:app", *args, env=env, timeout=60)
