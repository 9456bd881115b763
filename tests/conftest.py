"""Fixtures shared by unit and integration tests: a private redis-server.

Tests never touch a shared Redis. Without redis-server on PATH the Redis tests skip with
the reason, except under CI (the CI variable set), where they fail: CI must run them.
"""

from __future__ import annotations

import compileall
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_server import RedisServer, redis_server_binary

_prefixes = itertools.count()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the package and the tests' modules to bytecode once, before the tests start
    their workers and CLI commands. Each of those imports the package; where
    PYTHONDONTWRITEBYTECODE is set (as on this project's CI machines) none writes a cache,
    so each would compile every module again: ~0.15 s of CPU a process, over the
    thousand-odd processes of a run. An editable install is never compiled by pip."""
    import conveyor

    for directory in (Path(conveyor.__file__).parent, Path(__file__).parent):
        compileall.compile_dir(directory, quiet=2)


def require_redis_server() -> None:
    if redis_server_binary() is not None:
        return
    reason = "redis-server is not on PATH (apt-get install redis-server); Redis tests need it"
    if os.environ.get("CI"):
        pytest.fail(reason + ", and CI must run them")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server (no persistence) for the whole session."""
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so tests sharing the server never see each other."""
    return f"test{next(_prefixes)}-{os.getpid()}:"


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def raw(redis_url: str) -> Iterator[Any]:
    """A plain redis-py client on the session's server, to look at what Conveyor stored."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test only, with appendonly on, for tests that kill it."""
    require_redis_server()
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
