"""Results, the coordinator and the schedule store on Redis Cluster: each in one slot.

Each is its single-Redis store unchanged, on a ``ClusterLink`` whose prefix carries a hash
tag of its own, so every script of the store touches one slot: results ``{r}``, the
coordinator ``{c}``, the schedule ``{beat}``. A chord's counter and its members' results
are all result keys, so no script ever needs two slots. The price is that results (and the
coordinator) live on one shard each, while queues spread over all of them: results are
about a third of Redis's work per task (docs/brokers.md, "Redis Cluster").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .backends.redis import RedisBackend
from .beat.redis import RedisStore
from .coordination.redis import RedisCoordinator
from .redis_cluster import ClusterLink

__all__ = ["ClusterBackend", "ClusterCoordinator", "ClusterScheduleStore"]


class ClusterBackend(RedisBackend):
    """``ClusterBackend("redis+cluster://10.0.0.1:6379")``: results in the ``{r}`` slot."""

    def __init__(
        self,
        url: str = "redis+cluster://localhost:6379",
        *,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        **redis_options: Any,
    ) -> None:
        link = ClusterLink(url, tag="r", prefix=prefix, **redis_options)
        super().__init__(url, clock=clock, link=link)

    @classmethod
    def from_url(cls, url: str) -> ClusterBackend:
        return cls(url)


class ClusterCoordinator(RedisCoordinator):
    """Revocations, limits, locks and idempotency keys in the ``{c}`` slot."""

    def __init__(
        self,
        url: str = "redis+cluster://localhost:6379",
        *,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        **redis_options: Any,
    ) -> None:
        link = ClusterLink(url, tag="c", prefix=prefix, **redis_options)
        super().__init__(url, clock=clock, link=link)

    @classmethod
    def from_url(cls, url: str) -> ClusterCoordinator:
        return cls(url)


class ClusterScheduleStore(RedisStore):
    """The beat schedule in the ``{beat}`` slot."""

    def __init__(self, url: str, *, prefix: str | None = None, **redis_options: Any) -> None:
        link = ClusterLink(url, tag="beat", prefix=prefix, **redis_options)
        super().__init__(url, link=link)
