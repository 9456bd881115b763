"""Helpers for the beat integration tests: a small app module, scheduler and worker
processes, and reading back what was sent."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.message import Message
from conveyor.serialization import decode_message

from .support import DEFAULT_TIMEOUT, base_env, wait_until

BEAT_APP = '''"""Entries come from BEAT_ENTRIES (JSON); the one task logs each run to BEAT_RUNS."""
import json
import os
import time

from conveyor import Conveyor

app = Conveyor(
    "beatapp",
    broker=os.environ["CONVEYOR_BROKER_URL"],
    timezone=os.environ.get("BEAT_TZ", "UTC"),
    broker_lease=2,
)
app.conf.beat_schedule = {
    name: {
        "task": "beat_app.tick",
        "schedule": spec["every"],
        "args": [name],
        "catch_up": spec.get("catch_up", "latest"),
    }
    for name, spec in json.loads(os.environ.get("BEAT_ENTRIES", "{}")).items()
}


@app.task(bind=True, name="beat_app.tick")
def tick(self, entry):
    with open(os.environ["BEAT_RUNS"], "a", encoding="utf-8") as handle:
        line = {"entry": entry, "due": self.request.headers.get("beat_due"), "pid": os.getpid()}
        handle.write(json.dumps(line) + "\\n")
    if entry == "slow":
        time.sleep(float(os.environ.get("BEAT_SLOW", "3")))
'''
APP_SPEC = "beat_app:app"


def write_app(directory: Path) -> None:
    (directory / "beat_app.py").write_text(BEAT_APP, encoding="utf-8")


def beat_env(
    directory: Path, entries: Mapping[str, Mapping[str, Any]], **extra: str
) -> dict[str, str]:
    return {
        "BEAT_ENTRIES": json.dumps(entries),
        "BEAT_RUNS": str(directory / "runs.jsonl"),
        **extra,
    }


class Process:
    """``python -m conveyor ARGS`` in its own session, its output in a log file."""

    def __init__(
        self, name: str, args: list[str], directory: Path, broker_url: str, env: Mapping[str, str]
    ) -> None:
        self.name = name
        self.log_path = directory / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", *args],
            cwd=directory,
            env=base_env(broker_url, env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, needle: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        def seen() -> bool:
            if needle in self.log():
                return True
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log()}"
                )
            return False

        wait_until(seen, timeout, what=f"{needle!r} in the log of {self.name}")

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM; SIGKILL the whole session if it is still there after ``grace``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(DEFAULT_TIMEOUT)


class Processes:
    """Starts beat and worker processes for one test; every one is gone afterwards."""

    def __init__(self, directory: Path, broker_url: str) -> None:
        self.directory = directory
        self.broker_url = broker_url
        self.started: list[Process] = []

    def beat(self, env: Mapping[str, str], *args: str) -> Process:
        name = f"beat{len(self.started) + 1}"
        process = Process(
            name,
            ["beat", "-A", APP_SPEC, "-l", "DEBUG", *args],
            self.directory,
            self.broker_url,
            env,
        )
        self.started.append(process)
        process.wait_for_log("entries enabled")
        return process

    def worker(self, env: Mapping[str, str], *args: str) -> Process:
        name = f"worker{len(self.started) + 1}"
        argv = ["worker", "-A", APP_SPEC, "-l", "INFO", "-n", f"{name}@beat", "-c", "1", *args]
        process = Process(name, argv, self.directory, self.broker_url, env)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


def sent_messages(broker_url: str) -> list[Message]:
    """Every message waiting in the SQLite broker, oldest first."""
    path = broker_url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, timeout=10)
    try:
        rows = conn.execute(
            "SELECT body FROM conveyor_messages UNION ALL SELECT body FROM conveyor_delayed "
            "UNION ALL SELECT body FROM conveyor_inbox"  # single sends not yet moved
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        rows = []  # the broker has not made its tables yet: nothing was sent
    finally:
        conn.close()
    return [decode_message(bytes(body)) for (body,) in rows]


def dues(messages: list[Message], entry: str) -> list[str]:
    """The due times (UTC ISO) sent for one entry, sorted."""
    return sorted(m.headers["beat_due"] for m in messages if m.headers.get("beat_entry") == entry)
