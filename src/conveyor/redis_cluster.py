"""Redis Cluster: ``redis+cluster://host:port`` (``rediss+cluster://`` for TLS).

One address of the cluster is enough: redis-py's ``RedisCluster`` client reads the slot map
from it, sends each command to the primary that owns its key's hash slot, follows MOVED and
ASK replies while the cluster reshards, and maps slots again after a failover inside the
cluster. Nothing here discovers anything by hand.

A Lua script may only touch keys of one hash slot, on the node that owns it. Conveyor's
scripts build their key names from a prefix, so each store here gets a prefix that carries a
hash tag (``<prefix>{<tag>}:``): every key a script builds from it hashes to that tag's slot,
and the script is sent there by naming two keys of that slot that never exist, the prefix and
the prefix followed by ``?`` (``EVALSHA sha 2 <prefix> <prefix>? ...``: the scripts read only
ARGV, so their arguments are unchanged). Which tags the stores use is ``docs/brokers.md``'s
"Redis Cluster" section: each queue has its own (``{q:<queue>}``), so queues spread over the
shards; results, the coordinator and the schedule store have one each.

Why two keys that never exist: while a reshard moves a slot, its keys are on both nodes, and
Redis 7 fails a script's command on a key of that slot it does not hold (a key already moved,
or one the script creates) with "Script attempted to access a non local key", after the
script's earlier writes took effect. Declaring every key would not help: a message's keys
come from Redis inside the script, and a declared key the script creates fails the same way.
A command that declares several keys of a moving slot, some missing, is refused before it
runs instead: the old node answers ASK (all missing) and the new one TRYAGAIN. With two keys
that are always missing, every script is refused, whole, for as long as its slot moves, and
runs as before once the move is over; ``ClusterLink.command`` and ``SlotPipeline`` wait and
send it again (up to ``UNSTABLE_WAIT``). A move takes milliseconds per thousand keys.

Scripts are loaded on every primary at once (the first time one is missing): the calls of a
slot that moved go to a node that may never have run them, and one thread's load must not
land on the slot's old node while another's call reaches its new one.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    RedisError,
    TryAgainError,
)

from .exceptions import BrokerError, ImproperlyConfigured
from .redaction import redact_text, redact_url
from .redis_connection import CONVEYOR_OPTIONS, DEFAULT_PREFIX, RedisLink, number_option

__all__ = [
    "CLUSTER_OPTIONS",
    "CLUSTER_SCHEMES",
    "UNSTABLE_WAIT",
    "ClusterLink",
    "SlotPipeline",
    "is_cluster_url",
    "split_cluster_url",
]

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
CLUSTER_OPTIONS = ("result_shards",)
"""Conveyor's options that only a cluster URL takes (``cluster_stores.RESULT_SHARDS``)."""

_SETTINGS: dict[str, Any] = {
    "socket_connect_timeout": 5.0,
    "socket_timeout": 30.0,
    "socket_keepalive": True,
}
"""As a single Redis's (``redis_connection``): a dead node is noticed within the timeout."""

UNSTABLE_WAIT = 30.0
"""Seconds a command refused because its slot is moving is sent again before it fails."""
_RETRY_PAUSE = 0.01


def _unstable(exc: BaseException) -> bool:
    """Whether ``exc`` says the command's slot is moving (or just moved): nothing ran."""
    if isinstance(exc, TryAgainError | AskError):  # MovedError is an AskError
        return True
    text = str(exc)
    if isinstance(exc, ClusterError) and "TTL exhausted" in text:  # redis-py's, after ASKs
        return True
    return isinstance(exc, RedisError) and text.startswith(("MOVED", "ASK", "TRYAGAIN"))


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def split_cluster_url(url: str) -> tuple[str, dict[str, str]]:
    """(the ``redis://`` or ``rediss://`` URL for redis-py, Conveyor's options)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in CLUSTER_SCHEMES:
        raise ImproperlyConfigured(f"not a Redis Cluster URL: {redact_url(url)!r}")
    if parts.path.strip("/") not in ("", "0"):
        raise ImproperlyConfigured(
            f"bad Redis Cluster URL {redact_url(url)!r}: a cluster has only database 0; "
            "drop the database number from the path"
        )
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in CONVEYOR_OPTIONS or name in CLUSTER_OPTIONS:
            ours[name] = value
        else:
            theirs.append((name, value))
    if ours.get("durable") not in (None, "", "0", "off", "no", "false"):
        raise ImproperlyConfigured(
            f"durable= is not supported on Redis Cluster ({redact_url(url)!r}): WAIT must follow "
            "each write on its own node's connection; use a primary with replicas "
            "(redis:// or sentinel://) for durable mode"
        )
    prefix = ours.get("prefix", DEFAULT_PREFIX)
    if "{" in prefix or "}" in prefix:
        raise ImproperlyConfigured(
            f"bad prefix {prefix!r} in {redact_url(url)!r}: on Redis Cluster Conveyor adds its "
            "own hash tags to the prefix; use a prefix without braces"
        )
    plain = scheme.partition("+")[0]
    return urlunsplit(parts._replace(scheme=plain, path="", query=urlencode(theirs))), ours


class ClusterLink(RedisLink):
    """A ``RedisLink`` whose keys all live in one hash slot (its ``tag``'s), on a cluster.

    Links made with ``sibling()`` share one ``RedisCluster`` client (and its connections).
    """

    def __init__(
        self,
        url: str,
        *,
        tag: str,
        prefix: str | None = None,
        client: RedisCluster | None = None,
        **redis_options: Any,
    ) -> None:
        redis_url, self.options = split_cluster_url(url)
        self.url = url
        self.safe_url = redact_url(url)
        base = prefix if prefix is not None else self.options.get("prefix", DEFAULT_PREFIX)
        if "{" in base or "}" in base:
            raise ImproperlyConfigured(
                f"bad prefix {base!r} for Redis Cluster: Conveyor adds its own hash tags; "
                "use a prefix without braces"
            )
        self.base_prefix = base
        self.tag = tag
        self.prefix = f"{base}{{{tag}}}:"
        """Every key of this link starts with it, so all hash to the tag's slot."""
        self._owner = client is None
        if client is None:
            settings = {**_SETTINGS, **redis_options}
            try:
                client = RedisCluster.from_url(redis_url, **settings)
            except (ValueError, TypeError) as exc:
                reason = redact_text(str(exc), url)
                raise ImproperlyConfigured(
                    f"bad Redis Cluster URL {self.safe_url!r}: {reason}"
                ) from None
            except Exception as exc:  # the first slot map comes from the seed node
                reason = redact_text(str(exc), url)
                raise BrokerError(
                    f"could not read the slot map of the Redis Cluster at {self.safe_url} "
                    f"(is it reachable, and is it a cluster?): {reason}"
                ) from exc
        self.cluster: Any = client  # redis-py's cluster client is not fully typed
        self.client = client  # type: ignore[assignment]
        self._own = threading.local()
        self._owned = []
        self._owned_lock = threading.Lock()
        node = client.get_default_node().redis_connection  # type: ignore[no-untyped-call]
        socket_timeout = node.connection_pool.connection_kwargs.get("socket_timeout")
        self.block_limit = (
            5.0 if socket_timeout is None else max(0.1, min(5.0, float(socket_timeout) / 2))
        )
        self.reply_spin = number_option(self.options, "reply_spin", 500, url) / 1e6
        self.result_spin = number_option(self.options, "result_spin", 1000, url) / 1e6
        self.durable = None

    def sibling(self, tag: str) -> ClusterLink:
        """A link to another tag's slot over the same client."""
        return ClusterLink(self.url, tag=tag, prefix=self.base_prefix, client=self.cluster)

    @property
    def db(self) -> int:
        return 0

    def functions(self) -> bool:
        """Never on a cluster: a function library is loaded node by node, and a slot that
        moves would reach a node without it; scripts go by EVALSHA, sent to the slot."""
        return False

    def same_database(self, other: RedisLink) -> bool:
        """Never on a cluster: two links' keys are in different slots, which no script may
        touch together."""
        return False

    def command(self, *args: Any, blocking: bool = False, spin: bool = False) -> Any:
        """One command, sent by the cluster client to the node of its key; a script called
        with no keys is ``guarded``, so it runs on the tag's node (and not while the tag's
        slot moves). A command refused while its slot moves is sent again."""
        if args[0] == "EVALSHA" and args[2] == 0:
            args = self.guarded(args)
        elif args[0] == "SCRIPT":  # on every primary: a moving slot's scripts run on two
            primaries = self.cluster.get_primaries()
            return self.cluster.execute_command(*args, target_nodes=primaries)
        deadline = time.monotonic() + UNSTABLE_WAIT
        while True:
            try:
                return self.cluster.execute_command(*args)
            except RedisError as exc:
                if not _unstable(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(_RETRY_PAUSE)

    def guarded(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """``EVALSHA sha 0 ...`` as ``EVALSHA sha 2 <prefix> <prefix>? ...``: sent to this
        link's slot, and refused whole while the slot moves (the module's docstring)."""
        return (args[0], args[1], 2, self.prefix, f"{self.prefix}?", *args[3:])

    def pipeline(self, transaction: bool) -> SlotPipeline:
        """A pipeline (MULTI/EXEC when ``transaction``) on the node that owns this link's
        slot: every command queued must use this link's keys (or be a keyless script)."""
        return SlotPipeline(self, transaction)

    def confirm(self) -> None:
        return None

    def close(self) -> None:
        if self._owner:
            self.cluster.close()


class SlotPipeline:
    """Commands queued for one slot's node and sent in one round trip (``execute``).

    redis-py's node pipeline follows neither MOVED nor ASK. A call refused because the slot
    moves or moved (ASK, TRYAGAIN, MOVED: nothing of it ran) is sent again, alone with the
    others refused (the whole batch, for a transaction), after reading the slot map again
    on MOVED, until ``UNSTABLE_WAIT`` passes. Scripts are guarded as ``ClusterLink.command``
    guards them. Queue commands as on redis-py's pipeline (``execute_command``, ``hset``...).
    """

    def __init__(self, link: ClusterLink, transaction: bool) -> None:
        self._link = link
        self._transaction = transaction
        self._calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def queue(*args: Any, **kwargs: Any) -> SlotPipeline:
            if name == "execute_command" and args[:1] == ("EVALSHA",) and args[2] == 0:
                args = self._link.guarded(args)
            self._calls.append((name, args, kwargs))
            return self

        return queue

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """The replies in order; the first error among them is raised, as redis-py does,
        unless ``raise_on_error`` is false: then errors are replies."""
        replies: list[Any] = [None] * len(self._calls)
        pending = list(range(len(self._calls)))
        deadline = time.monotonic() + UNSTABLE_WAIT
        while True:
            try:
                got = self._send(pending)
            except RedisError as exc:  # a transaction refused whole, or the node is down
                if not (_unstable(exc) or isinstance(exc, ClusterDownError)):
                    raise
                got = [exc] * len(pending)
            retry = []
            for at, reply in zip(pending, got, strict=True):
                replies[at] = reply
                if isinstance(reply, RedisError) and (
                    _unstable(reply) or isinstance(reply, ClusterDownError)
                ):
                    retry.append(at)
            if not retry or time.monotonic() > deadline:
                break
            if any(_moved(replies[at]) for at in retry):
                self._link.cluster.nodes_manager.initialize()
            else:
                time.sleep(_RETRY_PAUSE)
            pending = retry
        for reply in replies:
            if raise_on_error and isinstance(reply, Exception):
                raise reply
        return replies

    def _send(self, pending: list[int]) -> list[Any]:
        cluster = self._link.cluster
        node = cluster.get_node_from_key(self._link.prefix)
        pipe = cluster.get_redis_connection(node).pipeline(transaction=self._transaction)
        for at in pending:
            name, args, kwargs = self._calls[at]
            getattr(pipe, name)(*args, **kwargs)
        return list(pipe.execute(raise_on_error=False))


def _moved(exc: BaseException) -> bool:
    """A reply that means the slot map is stale (the slot has a new owner, or none yet)."""
    return isinstance(exc, MovedError | ClusterDownError) or str(exc).startswith("MOVED")
