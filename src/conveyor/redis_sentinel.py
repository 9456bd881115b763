"""Redis behind Sentinel, and the durable mode: what a production Redis deployment adds.

``sentinel://`` URLs are Celery's form: one ``sentinel://`` address per Sentinel, joined by
``;``, the database number in the path, the master's name in ``?master=`` (``master_name``
is accepted too), the Redis password in the URL's user part and the Sentinels' own in
``?sentinel_password=``::

    sentinel://:s3cret@10.0.0.1:26379;sentinel://10.0.0.2:26379;sentinel://10.0.0.3:26379/0?master=mymaster

redis-py's Sentinel support finds the master, and asks again whenever a connection fails,
so after a failover the next connection reaches the new master; nothing here discovers
anything by hand.

Durable mode (``?durable=replica`` or ``?durable=aof``, on any Redis URL) makes every
write of the stores (a send, an ack, a result) return only once Redis confirms it reached
``durable_replicas`` replicas (WAIT) or the primary's append-only file (WAITAOF, Redis 7.2
or later) within ``durable_timeout`` seconds; otherwise the write raises BrokerError, and
the caller retries it as any write that Redis may not have applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from redis.sentinel import Sentinel, SentinelConnectionPool

from .exceptions import BrokerError, ImproperlyConfigured
from .redaction import redact_url

__all__ = [
    "SENTINEL_SCHEMES",
    "Durability",
    "SentinelSpec",
    "async_sentinel_pool",
    "durability",
    "parse_sentinel_url",
    "sentinel_pool",
]

SENTINEL_SCHEMES = ("sentinel",)
DURABLE_OPTIONS = ("durable", "durable_replicas", "durable_timeout")


@dataclass(frozen=True)
class SentinelSpec:
    """What a ``sentinel://`` URL names."""

    hosts: list[tuple[str, int]]
    master: str
    options: dict[str, Any]
    """For the master's connections: db, username, password, timeouts."""
    sentinel_options: dict[str, Any]
    """For the Sentinels' own connections: password, timeouts."""


def parse_sentinel_url(url: str, settings: dict[str, Any]) -> SentinelSpec:
    hosts: list[tuple[str, int]] = []
    username = password = None
    db = 0
    query: dict[str, str] = {}
    for part in (p.strip() for p in url.split(";") if p.strip()):
        parts = urlsplit(part)
        if parts.scheme not in SENTINEL_SCHEMES:
            raise ImproperlyConfigured(
                f"bad Sentinel URL {redact_url(url)!r}: each address must start with "
                "sentinel:// (join them with ';')"
            )
        try:
            hosts.append((parts.hostname or "localhost", parts.port or 26379))
        except ValueError as exc:
            raise ImproperlyConfigured(f"bad Sentinel URL {redact_url(url)!r}: {exc}") from None
        username = username or parts.username
        password = password or parts.password
        if parts.path.strip("/"):
            try:
                db = int(parts.path.strip("/"))
            except ValueError:
                raise ImproperlyConfigured(
                    f"bad Sentinel URL {redact_url(url)!r}: the path must be a database number"
                ) from None
        query.update(parse_qsl(parts.query))
    master = query.pop("master", None) or query.pop("master_name", None)
    if not master:
        raise ImproperlyConfigured(
            f"Sentinel URL {redact_url(url)!r} names no master: add ?master=NAME (the name "
            "the Sentinels monitor)"
        )
    sentinel_password = query.pop("sentinel_password", None)
    options = dict(settings)
    for name, value in query.items():
        if name not in ("socket_timeout", "socket_connect_timeout"):
            raise ImproperlyConfigured(
                f"unknown option {name!r} in the Sentinel URL {redact_url(url)!r}"
            )
        options[name] = float(value)
    sentinel_options: dict[str, Any] = {
        k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")
    }
    if sentinel_password:
        sentinel_options["password"] = sentinel_password
    options["db"] = db
    if username:
        options["username"] = username
    if password:
        options["password"] = password
    return SentinelSpec(hosts, master, options, sentinel_options)


def sentinel_pool(url: str, settings: dict[str, Any]) -> SentinelConnectionPool:
    """A connection pool to the master that the Sentinels in ``url`` name."""
    spec = parse_sentinel_url(url, settings)
    manager = Sentinel(spec.hosts, sentinel_kwargs=spec.sentinel_options)
    pool: SentinelConnectionPool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
        spec.master, manager, **spec.options
    )
    return pool


def async_sentinel_pool(url: str, settings: dict[str, Any]) -> Any:
    """The same, for redis-py's asyncio client (the async client's connections)."""
    from redis.asyncio.sentinel import Sentinel as AsyncSentinel
    from redis.asyncio.sentinel import SentinelConnectionPool as AsyncPool

    spec = parse_sentinel_url(url, settings)
    manager = AsyncSentinel(spec.hosts, sentinel_kwargs=spec.sentinel_options)
    return AsyncPool(spec.master, manager, **spec.options)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Durability:
    """What a write waits for in durable mode."""

    mode: str
    """``replica`` (WAIT) or ``aof`` (WAITAOF)."""
    replicas: int
    timeout: float

    def command(self) -> tuple[Any, ...]:
        ms = max(1, int(self.timeout * 1000))
        if self.mode == "replica":
            return ("WAIT", self.replicas, ms)
        return ("WAITAOF", 1, 0, ms)

    def check(self, reply: Any, url: str) -> None:
        """Raise BrokerError when Redis did not confirm the write in time."""
        if self.mode == "replica":
            if int(reply) < self.replicas:
                raise BrokerError(
                    f"Redis at {url}: a write reached {int(reply)} of {self.replicas} "
                    f"replica(s) within {self.timeout}s (durable=replica); it is retried"
                )
            return
        local = int(reply[0]) if isinstance(reply, list | tuple) and reply else 0
        if local < 1:
            raise BrokerError(
                f"Redis at {url}: a write was not in the append-only file within "
                f"{self.timeout}s (durable=aof: is appendonly on?); it is retried"
            )


def durability(options: dict[str, str], url: str) -> Durability | None:
    """The durable mode a URL's options ask for, or None."""
    mode = options.get("durable")
    if not mode or mode in ("0", "off", "no", "false"):
        return None
    if mode not in ("replica", "aof"):
        raise ImproperlyConfigured(
            f"bad durable={mode!r} in {redact_url(url)!r}: choose durable=replica (a replica "
            "confirms each write) or durable=aof (the primary's append-only file does)"
        )
    try:
        replicas = int(options.get("durable_replicas", "1"))
        timeout = float(options.get("durable_timeout", "1.0"))
    except ValueError:
        raise ImproperlyConfigured(
            f"bad durable_replicas or durable_timeout in {redact_url(url)!r}: numbers"
        ) from None
    if replicas < 1 or timeout <= 0:
        raise ImproperlyConfigured(
            f"durable_replicas must be at least 1 and durable_timeout positive in "
            f"{redact_url(url)!r}"
        )
    return Durability(mode, replicas, timeout)
