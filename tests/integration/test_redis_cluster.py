"""Redis Cluster: real workers drain queues that live on different shards of a three-primary
cluster, and a chord whose members ran on those shards completes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from conveyor import chord, group
from conveyor.keys import TASK_PREFIX
from redis_server import RedisServer

from .cluster_support import ClusterServers, redis_cluster  # noqa: F401  (a fixture)
from .support import Workers, project_afresh

APP = "cluster_tasks:app"


def queues_on_every_shard(cluster: ClusterServers, prefix: str) -> list[str]:
    """One queue name per primary: the names whose slot ({q:<name>}) each node owns."""
    chosen: dict[int, str] = {}
    for n in range(200):
        name = f"shard{n}"
        node = cluster.node_of(f"{prefix}{{q:{name}}}:")
        chosen.setdefault(node.port, name)
        if len(chosen) == len(cluster.servers):
            return sorted(chosen.values())
    raise AssertionError("no queue names found for every shard")


@pytest.fixture
def tasks(
    redis_cluster: ClusterServers,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ModuleType]:
    runs = tmp_path / "runs"
    runs.mkdir()
    url = f"{redis_cluster.url}?prefix=drain{tmp_path.name[-8:]}:"
    monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
    monkeypatch.setenv("CLUSTER_RUNS", str(runs))
    with project_afresh("cluster_tasks") as module:
        yield module


def runs_of(runs: Path) -> Counter[int]:
    seen: Counter[int] = Counter()
    for log in runs.glob("*.log"):
        seen.update(int(line) for line in log.read_text().split())
    return seen


def test_a_drain_with_queues_on_every_shard(
    redis_cluster: ClusterServers,  # noqa: F811
    tasks: ModuleType,
    tmp_path: Path,
) -> None:
    url = tasks.app.broker.url
    queues = queues_on_every_shard(redis_cluster, tasks.app.broker.prefix)
    sent = 600
    results = [tasks.note.apply_async((n,), queue=queues[n % 3]) for n in range(sent)]
    assert tasks.app.broker.stats().keys() == set(queues)
    prefix = tasks.app.broker.prefix
    for server in redis_cluster.servers:  # every shard holds a queue's messages
        node = redis.Redis(port=server.port)
        assert any(b"{q:shard" in key for key in node.scan_iter(f"{prefix}*", count=1000))
        node.close()
    workers = Workers(tmp_path, url)
    env = {"CLUSTER_RUNS": str(tmp_path / "runs")}
    try:
        workers.start("-P", "prefork", "-c", "2", "-Q", ",".join(queues), env=env, app=APP)
        workers.start("-P", "threads", "-c", "4", "-Q", ",".join(queues), env=env, app=APP)
        assert [r.get(timeout=60) for r in results] == list(range(sent))
        members = group(tasks.note.s(n).set(queue=queue) for n, queue in enumerate(queues))
        callback = tasks.total.s().set(queue=queues[0])
        assert chord(members)(callback).get(timeout=30) == sum(range(len(queues)))
    finally:
        problems = workers.stop_all()
    assert problems == []
    ran = runs_of(tmp_path / "runs")
    assert ran == Counter(range(sent)) + Counter(range(len(queues)))
    assert tasks.app.broker.stats() == {}
    records = []  # results spread over the shards: each primary holds about a third
    for server in redis_cluster.servers:
        node = redis.Redis(port=server.port)
        stored = node.scan_iter(f"{prefix}{{r[0-9]*}}:v:conveyor-task-*", count=1000)
        records.append(sum(1 for _ in stored))
        node.close()
    assert sum(records) == sent + len(queues) + 1  # with the chord's members and callback
    assert min(records) > sent // 5, records


def test_a_queue_whose_slot_moved_is_followed(
    redis_cluster: ClusterServers,  # noqa: F811
    tasks: ModuleType,
    tmp_path: Path,
) -> None:
    """A planned reshard: the slot of a queue with 100 tasks in it moves to another shard
    while no worker runs; the producer's next sends follow MOVED (its slot map is stale),
    and a worker started afterwards drains all 200 from the new shard, each once."""
    prefix = tasks.app.broker.prefix
    [queue] = queues_on_every_shard(redis_cluster, prefix)[:1]
    tag = f"{prefix}{{q:{queue}}}:"
    first = [tasks.note.apply_async((n,), queue=queue) for n in range(100)]
    before = redis_cluster.node_of(tag)
    target = next(s for s in redis_cluster.servers if s is not before)
    assert redis_cluster.move_slot(tag, target) is before
    assert redis_cluster.node_of(tag) is target
    second = [tasks.note.apply_async((n,), queue=queue) for n in range(100, 200)]
    assert tasks.app.broker.stats()[queue].ready == 200
    workers = Workers(tmp_path, tasks.app.broker.url)
    try:
        env = {"CLUSTER_RUNS": str(tmp_path / "runs")}
        workers.start("-P", "threads", "-c", "4", "-Q", queue, env=env, app=APP)
        assert [r.get(timeout=60) for r in first + second] == list(range(200))
    finally:
        problems = workers.stop_all()
    assert problems == []
    assert runs_of(tmp_path / "runs") == Counter(range(200))
    old = redis.Redis(port=before.port)
    assert not list(old.scan_iter(f"{tag}*"))
    old.close()


def test_a_busy_queue_whose_slot_moves_loses_nothing(
    redis_cluster: ClusterServers,  # noqa: F811
    tasks: ModuleType,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """A reshard under load: while a worker drains 2,000 tasks of one queue and a producer
    sends half of them, the queue's slot moves to another primary and back, again and
    again, its keys ten at a time (scripts meet ASK, TRYAGAIN and MOVED; a script that ran
    while its keys were split between the nodes would fail halfway). Every task runs
    exactly once, its result is stored, and the queue ends empty."""
    prefix = tasks.app.broker.prefix
    [queue] = queues_on_every_shard(redis_cluster, prefix)[:1]
    tag = f"{prefix}{{q:{queue}}}:"
    home = redis_cluster.node_of(tag)
    away = next(s for s in redis_cluster.servers if s is not home)
    first = [tasks.note.apply_async((n,), queue=queue) for n in range(1000)]
    later: list[Any] = []

    def produce() -> None:
        for n in range(1000, 2000):
            later.append(tasks.note.apply_async((n,), queue=queue))
            if n % 100 == 0:
                time.sleep(0.02)  # spread over the moves

    workers = Workers(tmp_path, tasks.app.broker.url)
    request.node._conveyor_workers = workers  # their logs are printed if the test fails
    producer = threading.Thread(target=produce)
    moves = 0
    try:
        env = {"CLUSTER_RUNS": str(tmp_path / "runs")}
        workers.start("-P", "threads", "-c", "4", "-Q", queue, env=env, app=APP)
        assert first[0].get(timeout=30) == 0
        producer.start()
        while producer.is_alive() or moves < 4:
            redis_cluster.move_slot(tag, away if moves % 2 == 0 else home, batch=10, pause=0.002)
            moves += 1
        producer.join()
        assert [r.get(timeout=60) for r in first + later] == list(range(2000))
    finally:
        producer.join()
        problems = workers.stop_all()
    print(f"the queue's slot moved {moves} times during the drain")
    assert problems == []
    assert runs_of(tmp_path / "runs") == Counter(range(2000))
    assert tasks.app.broker.stats() == {}


def test_a_script_first_run_on_one_shard_is_known_on_every_primary(
    redis_cluster: ClusterServers,  # noqa: F811
    tasks: ModuleType,
) -> None:
    """A slot that moves takes its scripts' calls to a node that may never have run them:
    the first call that finds a script missing loads it on every primary, so the calls of
    a slot moving under load are not refused on their new node (with "No matching script")."""
    nodes = [redis.Redis(port=server.port) for server in redis_cluster.servers]
    try:
        for node in nodes:
            node.script_flush()
        [queue] = queues_on_every_shard(redis_cluster, tasks.app.broker.prefix)[:1]
        tasks.note.apply_async((1,), queue=queue)
        sha = tasks.app.broker.queue_broker(queue)._publish.sha
        assert [node.script_exists(sha) for node in nodes] == [[True]] * len(nodes)
    finally:
        for node in nodes:
            node.close()


def test_the_async_client_sends_and_waits(
    redis_cluster: ClusterServers,  # noqa: F811
    tasks: ModuleType,
    tmp_path: Path,
) -> None:
    """``await task.adelay()`` and ``await result.aget()`` on a cluster URL (their calls go
    to a thread: the cluster client is not the async client's)."""
    queues = queues_on_every_shard(redis_cluster, tasks.app.broker.prefix)

    async def round_trips() -> list[int]:
        sent = [await tasks.note.s(n).set(queue=queues[n % 3]).adelay() for n in range(30)]
        return [await result.aget(timeout=30) for result in sent]

    workers = Workers(tmp_path, tasks.app.broker.url)
    try:
        env = {"CLUSTER_RUNS": str(tmp_path / "runs")}
        workers.start("-P", "threads", "-c", "2", "-Q", ",".join(queues), env=env, app=APP)
        assert asyncio.run(round_trips()) == list(range(30))
    finally:
        problems = workers.stop_all()
    assert problems == []


def test_a_primary_killed_mid_drain_fails_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three primaries with a replica each; the primary of a queue's shard is killed with
    SIGKILL while a worker drains it (a share of the results lives there too). Its replica
    takes over, redis-py maps the slots again, and every task sent (and replicated) before
    the kill completes, without a restart of the worker or the producer."""
    cluster = ClusterServers(tmp_path / "cluster", primaries=3, replicas=1).start()
    try:
        owners = slot_owners(cluster)
        prefix = next(  # the results' listing and the coordinator on a shard that stays up
            p
            for p in (f"fo{n}:" for n in range(1000))
            if owners(f"{p}{{r}}:") == owners(f"{p}{{c}}:")
        )
        home = owners(f"{prefix}{{r}}:")
        queue = next(
            q for q in (f"work{n}" for n in range(1000)) if owners(f"{prefix}{{q:{q}}}:") != home
        )
        victim = cluster.node_of(f"{prefix}{{q:{queue}}}:")
        runs = tmp_path / "runs"
        runs.mkdir()
        url = f"redis+cluster://127.0.0.1:{home}?prefix={prefix}"
        monkeypatch.setenv("CONVEYOR_BROKER_URL", url)
        monkeypatch.setenv("CLUSTER_RUNS", str(runs))
        with project_afresh("cluster_tasks") as tasks:
            results = [tasks.slow_note.apply_async((n,), queue=queue) for n in range(300)]
            replicated(victim)
            workers = Workers(tmp_path, tasks.app.broker.url)
            try:
                env = {"CLUSTER_RUNS": str(runs)}
                workers.start("-P", "threads", "-c", "2", "-Q", queue, env=env, app=APP)
                assert [r.get(timeout=30) for r in results[:30]] == list(range(30))
                assert tasks.app.broker.stats()[queue].total > 100  # the drain is under way
                backend = tasks.app.backend  # a result kept on the victim, read through it
                n = next(
                    n
                    for n in range(100, 300)
                    if owners(backend.shard(TASK_PREFIX + results[n].id).prefix) == victim.port
                )
                victim.kill()
                began = time.monotonic()
                assert results[n].get(timeout=60) == n
                print(f"tasks resumed {time.monotonic() - began:.1f} s after the kill")
                assert [r.get(timeout=60) for r in results] == list(range(300))
            finally:
                problems = workers.stop_all()
        assert problems == []
        ran = runs_of(runs)
        assert set(ran) == set(range(300))  # each at least once (a lease may be redelivered)
        assert slot_owners(cluster)(f"{prefix}{{q:{queue}}}:") != victim.port  # its replica
    finally:
        cluster.stop()


def replicated(primary: RedisServer) -> None:
    """Until the primary's replica has every write it took."""
    node = redis.Redis(port=primary.port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = node.info("replication")
        replica = info.get("slave0") or {}
        if replica.get("state") == "online" and replica.get("offset") == info["master_repl_offset"]:
            node.close()
            return
        time.sleep(0.01)
    raise AssertionError(f"the replica did not catch up: {info}")


def slot_owners(cluster: ClusterServers) -> Callable[[str], int]:
    """key -> the port of the primary that owns its slot, from one read of the slot map."""
    from redis.crc import key_slot

    node = redis.Redis(port=cluster.servers[0].port)
    shards = node.execute_command("CLUSTER", "SLOTS")
    node.close()

    def owner(key: str) -> int:
        slot = key_slot(key.encode())
        return next(int(s[2][1]) for s in shards if s[0] <= slot <= s[1])

    return owner
