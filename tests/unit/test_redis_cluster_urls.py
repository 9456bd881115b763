"""redis+cluster:// URLs: what each store is given, and the errors for what a cluster
cannot do."""

from __future__ import annotations

import pytest

from conveyor.exceptions import BrokerError, ImproperlyConfigured
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
        assert stores["backend"].prefix == f"{redis_prefix}{{r}}:"
        assert stores["coordinator"].prefix == f"{redis_prefix}{{c}}:"
    finally:
        for store in stores.values():
            store.close()
