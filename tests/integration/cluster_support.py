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
                    "--repl-diskless-sync-delay",  # not Redis's 5 s wait for more replicas
                    "0",
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
        if self.replicas:
            self.attach_replicas(timeout)
        return self

    def attach_replicas(self, timeout: float = 30.0) -> None:
        """Until every primary has its replicas online. ``redis-cli --cluster create`` sends
        a replica's CLUSTER REPLICATE once the nodes have met; on a loaded host that can be
        refused (the replica does not know the primary yet) and the node stays a primary
        without slots, so such a node is pointed at a primary lacking a replica here. Each
        node's own INFO is read, not one node's gossip, which lags."""
        deadline = time.monotonic() + timeout
        while True:
            primaries: dict[int, int] = {}  # port -> replicas that say they follow it
            spare: list[int] = []
            follows: list[int] = []
            for server in (s for s in self.servers if s.running()):
                client = redis.Redis(port=server.port)
                info = client.info("replication")
                myself = next(
                    line.split()
                    for line in client.execute_command("CLUSTER", "NODES").decode().splitlines()
                    if "myself" in line.split()[2]
                )
                client.close()
                if info["role"] == "slave":
                    follows.append(int(info["master_port"]))
                elif len(myself) > 8:
                    primaries[server.port] = 0
                else:
                    spare.append(server.port)
            for port in follows:
                primaries[port] = primaries.get(port, 0) + 1
            lacking = [port for port, count in primaries.items() if count < self.replicas]
            if not lacking and all(self._replicas_online(port) for port in primaries):
                return
            for primary, port in zip(lacking, spare, strict=False):
                node, client = redis.Redis(port=primary), redis.Redis(port=port)
                try:
                    client.execute_command(
                        "CLUSTER", "REPLICATE", node.execute_command("CLUSTER", "MYID")
                    )
                except redis.ResponseError:
                    pass  # it has not heard of that primary yet: the next pass tries again
                finally:
                    node.close()
                    client.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster's replicas did not attach: {primaries}")
            time.sleep(0.1)

    @staticmethod
    def _replicas_online(port: int) -> bool:
        client = redis.Redis(port=port)
        info = client.info("replication")
        client.close()
        replicas = [info.get(f"slave{n}") or {} for n in range(int(info["connected_slaves"]))]
        return bool(replicas) and all(r.get("state") == "online" for r in replicas)

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

    def move_slot(
        self, key: str, target: RedisServer, batch: int = 100, pause: float = 0.0
    ) -> RedisServer:
        """Move ``key``'s slot and its keys to ``target`` as ``redis-cli --cluster reshard``
        does (IMPORTING, MIGRATING, MIGRATE ``batch`` keys at a time, ``pause`` seconds
        apart, then SETSLOT NODE on the target, the source and the others); the server it
        left."""
        source = self.node_of(key)
        if source is target:
            return source
        src, dst = redis.Redis(port=source.port), redis.Redis(port=target.port)
        slot = int(src.execute_command("CLUSTER", "KEYSLOT", key))
        src_id = src.execute_command("CLUSTER", "MYID").decode()
        dst_id = dst.execute_command("CLUSTER", "MYID").decode()
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            time.sleep(pause)
        others = [s for s in self.servers if s not in (source, target) and s.running()]
        for server in (target, source, *others):
            node = redis.Redis(port=server.port)
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            node.close()
        src.close()
        dst.close()
        self._settle(key, target)
        return source

    def _settle(self, key: str, owner: RedisServer, timeout: float = 10.0) -> None:
        """Until every node says ``owner`` has ``key``'s slot and knows ``owner``'s config
        epoch as the newest: else late gossip from the node the slot left, sent before the
        move with a newer epoch, can give the slot back to it (moves in quick succession)."""
        deadline = time.monotonic() + timeout
        while True:
            views = []  # (current epoch, my epoch, owner of the slot), per node
            for server in (s for s in self.servers if s.running()):
                node = redis.Redis(port=server.port)
                info = node.execute_command("CLUSTER", "INFO").decode().split()
                fields = dict(line.split(":", 1) for line in info if ":" in line)
                slot = int(node.execute_command("CLUSTER", "KEYSLOT", key))
                shards = node.execute_command("CLUSTER", "SLOTS")
                node.close()
                seen = next((int(s[2][1]) for s in shards if s[0] <= slot <= s[1]), -1)
                epochs = (int(fields["cluster_current_epoch"]), int(fields["cluster_my_epoch"]))
                views.append((*epochs, seen, server is owner))
            newest = max(view[0] for view in views)
            if all(
                current == newest and seen == owner.port and (mine == newest or not is_owner)
                for current, mine, seen, is_owner in views
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not settle after a slot move: {views}")
            time.sleep(0.02)

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
