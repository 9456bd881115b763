"""A private three-primary Redis Cluster on loopback ports, made the way operators make one:
three ``redis-server --cluster-enabled yes`` and ``redis-cli --cluster create``.

``redis_cluster`` is a session-scoped fixture (import it into a test module to use it);
``ClusterServers(directory).start()`` works outside pytest too (bench/cluster_bench.py).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_server import RedisServer, free_port, redis_server_binary

__all__ = ["ClusterServers", "redis_cluster"]


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            try:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue


class ClusterServers:
    """``primaries`` redis-servers joined into one cluster; ``url`` is Conveyor's URL."""

    def __init__(self, directory: Path, primaries: int = 3, replicas: int = 0) -> None:
        self.directory = Path(directory)
        self.replicas = replicas
        self.servers = [
            RedisServer(
                self.directory / f"node{i}",
                port=_cluster_port(),
                extra=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(self.directory / f"node{i}" / "nodes.conf"),
                    "--cluster-node-timeout",
                    "2000",
                ),
            )
            for i in range(primaries * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.servers[0].port}"

    def start(self, timeout: float = 30.0) -> ClusterServers:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not on PATH (apt-get install redis-tools)")
        for server in self.servers:
            server.start()
        addresses = [f"127.0.0.1:{server.port}" for server in self.servers]
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )
        self.wait_ok(timeout)
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says cluster_state:ok."""
        deadline = time.monotonic() + timeout
        for server in self.servers:
            if not server.running():
                continue
            client = redis.Redis(port=server.port)
            while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the test cluster did not reach cluster_state:ok")
                time.sleep(0.05)
            client.close()

    def node_of(self, key: str) -> RedisServer:
        """The server that owns ``key``'s hash slot."""
        alive = next(s for s in self.servers if s.running())
        client = redis.Redis(port=alive.port)
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        shards = client.execute_command("CLUSTER", "SLOTS")
        client.close()
        for start, end, primary, *_ in shards:
            if start <= slot <= end:
                return next(s for s in self.servers if s.port == int(primary[1]))
        raise LookupError(f"no node serves slot {slot}")

    def move_slot(self, key: str, target: RedisServer) -> RedisServer:
        """Move ``key``'s slot and its keys to ``target`` as a reshard does (IMPORTING,
        MIGRATING, MIGRATE, SETSLOT NODE on every node); the server it left."""
        source = self.node_of(key)
        if source is target:
            return source
        src, dst = redis.Redis(port=source.port), redis.Redis(port=target.port)
        slot = int(src.execute_command("CLUSTER", "KEYSLOT", key))
        src_id = src.execute_command("CLUSTER", "MYID").decode()
        dst_id = dst.execute_command("CLUSTER", "MYID").decode()
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        for server in self.servers:
            node = redis.Redis(port=server.port)
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            node.close()
        src.close()
        dst.close()
        return source

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    """One private three-primary cluster for the whole session (skips without redis-server)."""
    if redis_server_binary() is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are needed for the cluster tests")
    cluster = ClusterServers(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()
