"""A Redis password never shows: not in a worker's banner or log, not in a CLI error.

The test's own redis-server requires passwords (``requirepass`` for the default user, and
an ACL user ``ada``); real ``conveyor worker`` processes and CLI commands get URLs that
carry them in each form redis-py accepts, rightly or wrongly.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("redis")

from conveyor import Conveyor
from redis_server import RedisServer, free_port

from .redis_support import APP_MODULE, Worker, cli, write_app
from .support import DEFAULT_TIMEOUT, wait_until

SECRET = "s3cret-xyz"
USER_SECRET = "s3cret-ada"
WRONG = "wr0ng-s3cret"
SECRETS = (SECRET, USER_SECRET, WRONG, "s3cret")


@pytest.fixture
def server(private_redis: RedisServer) -> RedisServer:
    """The test's own redis-server, restarted to require a password (and to know ada)."""
    private_redis.kill()
    private_redis.password = SECRET
    private_redis.extra = ("--user", "ada", "on", f">{USER_SECRET}", "~*", "&*", "+@all")
    return private_redis.start()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def assert_hidden(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


def url_forms(port: int, password: str = SECRET, user_password: str = USER_SECRET) -> list[str]:
    return [
        f"redis://127.0.0.1:{port}/0?password={password}",
        f"redis://:{password}@127.0.0.1:{port}/0",
        f"redis://ada:{user_password}@127.0.0.1:{port}/0",
    ]


@pytest.mark.parametrize("form", [0, 1, 2], ids=["query", "password", "user-and-password"])
def test_a_worker_works_and_never_logs_the_password(
    server: RedisServer, tmp_path: Path, workers: list[Worker], form: int
) -> None:
    url = url_forms(server.port)[form]
    workdir = write_app(tmp_path)
    worker = Worker("w1", url, workdir)
    workers.append(worker)
    worker.wait_ready()
    client = Conveyor("secrets-client", broker=url, set_as_current=False)
    try:
        result = client.send_task(f"{APP_MODULE}.work", args=[7])
        assert result.get(timeout=DEFAULT_TIMEOUT) == 7
        assert "***" in repr(client)
    finally:
        client.close()
    worker.stop()

    log = worker.log()
    (banner,) = [line for line in log.splitlines() if line.startswith("  broker:")]
    assert "***" in banner and "127.0.0.1" in banner
    assert f"{APP_MODULE}.work" in log
    assert_hidden(log)


def test_a_worker_with_a_wrong_password_says_so_without_showing_it(
    server: RedisServer, tmp_path: Path, workers: list[Worker]
) -> None:
    workdir = write_app(tmp_path)
    for index, url in enumerate(url_forms(server.port, WRONG, WRONG)):
        worker = Worker(f"w{index}", url, workdir)
        workers.append(worker)
        worker.wait_ready()
        wait_until(
            lambda worker=worker: "invalid username-password pair" in worker.log(),
            what="the worker to report the refused password",
        )
        worker.stop()
        assert_hidden(worker.log())
        assert "Traceback" not in worker.log()


def test_cli_errors_name_the_url_without_its_password(server: RedisServer, tmp_path: Path) -> None:
    workdir = write_app(tmp_path)
    closed = free_port()
    cases = [
        *[(url, "invalid username-password pair") for url in url_forms(server.port, WRONG, WRONG)],
        *[(url, "Connection refused") for url in url_forms(closed)],
    ]
    commands = (["queues"], ["result", "4f1c"], ["dead-letters", "list"])
    runs = [(url, cause, command) for url, cause in cases for command in commands]
    with ThreadPoolExecutor(4) as pool:  # 18 processes: side by side, a third of the time
        done = list(pool.map(lambda run: cli(run[0], workdir, *run[2]), runs))
    for (_, cause, command), run in zip(runs, done, strict=True):
        output = run.stdout + run.stderr
        assert run.returncode == 1, (command, output)
        assert_hidden(output)
        assert "Traceback" not in output
        (line,) = output.strip().splitlines()
        assert line.startswith("Error: Redis at redis://"), line
        assert "127.0.0.1" in line and "***" in line and cause in line
