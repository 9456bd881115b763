"""A real ``conveyor dashboard`` process and a real Chromium for the dashboard's tests."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from redis_server import free_port

from .support import base_env

CHROMIUM = "/usr/bin/chromium"
APP = "dashboard_tasks:app"


class DashboardProcess:
    def __init__(self, process: subprocess.Popen[str], base: str, log: Path) -> None:
        self.process = process
        self.base = base
        self.log_path = log

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def start_dashboard_process(
    url: str, tmp_path: Path, args: Sequence[str] = (), host: str = "127.0.0.1"
) -> subprocess.Popen[str]:
    log = (tmp_path / "dashboard.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "-A", APP, "dashboard", "--host", host, *args],
        cwd=tmp_path,
        env=base_env(url),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


@contextmanager
def dashboard(url: str, tmp_path: Path, *args: str) -> Iterator[DashboardProcess]:
    port = free_port()
    process = start_dashboard_process(url, tmp_path, ["--port", str(port), *args])
    board = DashboardProcess(process, f"http://127.0.0.1:{port}", tmp_path / "dashboard.log")
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the dashboard exited: {board.log()}")
            try:
                status, _ = board.get("/health")
                if status in (200, 401):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the dashboard did not answer: {board.log()}")
            time.sleep(0.1)
        yield board
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
