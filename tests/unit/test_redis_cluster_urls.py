"""redis+cluster:// URLs: what each store is given, and the errors for what a cluster
cannot do."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from conveyor.cluster_stores import shard_tags
from conveyor.exceptions import BrokerError, ImproperlyConfigured
from conveyor.keys import chord_key
from conveyor.redis_cluster import split_cluster_url
from conveyor.storage import STORES, open_store
from integration.cluster_support import (
    ClusterServers,
    redis_cluster,  # noqa: F401  (a fixture)
)
from redis_server import RedisServer


def test_every_role_has_both_cluster_schemes() -> None:
    for role, schemes in STORES.items():
        assert schemes["redis+cluster"] == schemes["rediss+cluster"], role
        assert "cluster" in schemes["redis+cluster"].lower(), role


def test_the_url_for_redis_py_and_conveyors_options() -> None:
    url, options = split_cluster_url(
        "rediss+cluster://app:pw@node1:7000?prefix=shop:&ssl_cert_reqs=none&reply_spin=0"
    )
    assert url == "rediss://app:pw@node1:7000?ssl_cert_reqs=none"
    assert options == {"prefix": "shop:", "reply_spin": "0"}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://node1:7000/2", "only database 0"),
        ("redis+cluster://node1:7000?durable=replica", "durable= is not supported"),
        ("redis+cluster://node1:7000?prefix=a{b}:", "without braces"),
    ],
)
def test_what_a_cluster_cannot_do_is_named(url: str, says: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=says):
        split_cluster_url(url)
    with pytest.raises(ImproperlyConfigured, match=says):
        open_store("broker", url, "unknown")


def test_a_server_that_is_not_a_cluster(redis_server: RedisServer) -> None:
    url = f"redis+cluster://:secret@127.0.0.1:{redis_server.port}"
    with pytest.raises(BrokerError, match="could not read the slot map") as caught:
        open_store("backend", url, "unknown")
    assert "secret" not in str(caught.value)


def test_each_store_keeps_its_keys_in_its_own_slot(
    redis_cluster: ClusterServers,  # noqa: F811
    redis_prefix: str,
) -> None:
    url = f"{redis_cluster.url}?prefix={redis_prefix}"
    stores = {role: open_store(role, url, "unknown") for role in STORES}
    try:
        assert stores["broker"].queue_broker("emails").prefix == f"{redis_prefix}{{q:emails}}:"
        results = stores["backend"].shards
        assert [r.prefix for r in results] == [f"{redis_prefix}{{{t}}}:" for t in shard_tags(6)]
        assert stores["coordinator"].prefix == f"{redis_prefix}{{c}}:"
    finally:
        for store in stores.values():
            store.close()


def test_result_shards_fall_in_equal_parts_of_the_slot_space(
    redis_cluster: ClusterServers,  # noqa: F811
    redis_prefix: str,
) -> None:
    """Three shards on a cluster of three primaries made by ``redis-cli --cluster create``:
    one on each primary. A chord's keys share a shard, and chords spread over all."""
    assert len(set(shard_tags(12))) == 12
    for count in (1, 3, 6, 12):
        slots = [key_slot(tag.encode()) for tag in shard_tags(count)]
        assert [slot * count // 16384 for slot in slots] == list(range(count))
    url = f"{redis_cluster.url}?prefix={redis_prefix}&result_shards=3"
    backend = open_store("backend", url, "unknown")
    try:
        owners = {redis_cluster.node_of(shard.prefix).port for shard in backend.shards}
        assert len(owners) == 3
        chords = {backend.shard(chord_key(f"chord{n}")) for n in range(30)}
        assert chords == set(backend.shards)
        assert all(
            backend.shard(chord_key(f"chord{n}", "bucket", 3))
            is backend.shard(chord_key(f"chord{n}"))
            for n in range(30)
        )
    finally:
        backend.close()
    with pytest.raises(ImproperlyConfigured, match="result_shards"):
        open_store("backend", f"{redis_cluster.url}?result_shards=0", "unknown")
