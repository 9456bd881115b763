"""A Redis primary with replicas and three Sentinels, all private, on loopback ports."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from redis_server import RedisServer, free_port, redis_server_binary

MASTER = "conveyor-test"


class SentinelProcess:
    def __init__(self, directory: Path, primary_port: int) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = directory / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {directory}\n"
            f"logfile {directory / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 4000\n"
            f"sentinel parallel-syncs {MASTER} 2\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = redis_server_binary()
        assert binary is not None, "redis-server is not on PATH"
        self.process = subprocess.Popen(
            [binary, str(self.conf), "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class SentinelGroup:
    """``primary``, ``replicas`` and ``sentinels``; ``url()`` is Conveyor's sentinel:// URL."""

    def __init__(self, directory: Path, replicas: int = 2) -> None:
        fast_sync = ("--repl-diskless-sync-delay", "0")  # not Redis's 5 s wait for more replicas
        self.primary = RedisServer(directory / "primary", extra=fast_sync)
        self.replicas = [
            RedisServer(
                directory / f"replica{i}", extra=("--replicaof", "127.0.0.1", "0", *fast_sync)
            )
            for i in range(replicas)
        ]
        self.sentinels: list[SentinelProcess] = []
        self.directory = directory

    def start(self) -> None:
        self.primary.start()
        for replica in self.replicas:
            replica.extra = (*replica.extra[:2], str(self.primary.port), *replica.extra[3:])
            replica.start()
        deadline = time.monotonic() + 20
        client = redis.Redis(port=self.primary.port)
        while not self._replicas_online(client):
            assert time.monotonic() < deadline, "the replicas did not catch up"
            time.sleep(0.05)
        self.sentinels = [
            SentinelProcess(self.directory / f"sentinel{i}", self.primary.port) for i in range(3)
        ]
        for sentinel in self.sentinels:
            sentinel.start()
        deadline = time.monotonic() + 20
        while not all(self._knows_replicas(s) for s in self.sentinels):
            assert time.monotonic() < deadline, "the sentinels did not find the replicas"
            time.sleep(0.1)

    def _replicas_online(self, client: redis.Redis) -> bool:
        info = client.info("replication")
        states = [(info.get(f"slave{i}") or {}).get("state") for i in range(len(self.replicas))]
        return states == ["online"] * len(self.replicas)

    def _knows_replicas(self, sentinel: SentinelProcess) -> bool:
        try:
            client = redis.Redis(port=sentinel.port, socket_timeout=1)
            return len(client.sentinel_slaves(MASTER)) >= len(self.replicas) and (
                len(client.sentinel_sentinels(MASTER)) >= 2
            )
        except redis.RedisError:
            return False

    def master_port(self) -> int:
        client = redis.Redis(port=self.sentinels[0].port, socket_timeout=1)
        return int(client.sentinel_get_master_addr_by_name(MASTER)[1])

    def url(self, db: int = 0, **options: str) -> str:
        hosts = ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels)
        query = "&".join(f"{k}={v}" for k, v in {"master": MASTER, **options}.items())
        return f"{hosts}/{db}?{query}"

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in [self.primary, *self.replicas]:
            server.stop()


@contextmanager
def sentinel_group(directory: Path, replicas: int = 2) -> Iterator[SentinelGroup]:
    group = SentinelGroup(directory, replicas)
    try:
        group.start()
        yield group
    finally:
        group.stop()
