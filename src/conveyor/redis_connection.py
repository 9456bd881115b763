"""What the Redis broker and result backend share: URL options, connections, scripts, errors.

A URL is handed to redis-py, which understands ``redis://`` and ``rediss://`` (TLS), a
username and password, the database number in the path and its own query options
(``socket_timeout``, ``ssl_cert_reqs``, ...). Conveyor's own options ride in the same query
string and are taken out first:

=====================  ========================================================  =========
option                 meaning                                                   default
=====================  ========================================================  =========
prefix                 start of every key Conveyor writes                        conveyor:
publish_retries        broker: retries of a send that cannot reach Redis         5
publish_retry_delay    broker: seconds before the first retry (then doubling)    0.2
reply_spin             microseconds to poll for a quick reply before sleeping    500
result_spin            microseconds a result wait polls before it sleeps         1000
=====================  ========================================================  =========

Connections come from a redis-py ``ConnectionPool``, which notices a fork (it compares
pids) and opens fresh sockets in the child, so a forked worker never shares its parent's.
redis-py's own retrying is turned off: a command that cannot reach Redis fails at once,
and the broker and backend decide what to retry (see ``RedisLink.call``).

A quick command's reply is first polled for (``reply_spin``), and so is a result that a
``get()`` blocks on (``result_spin``): see ``ReplyWait``.
"""

from __future__ import annotations

import hashlib
import os
import select
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .exceptions import BrokerError, ImproperlyConfigured
from .redaction import redact_text, redact_url
from .redis_sentinel import DURABLE_OPTIONS, SENTINEL_SCHEMES, durability, sentinel_pool


def _hiredis_packer() -> Callable[[tuple[Any, ...]], bytes] | None:
    try:
        import hiredis
    except ImportError:  # the redis extra installs it; without it, redis-py packs
        return None
    pack: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command
    return pack


_pack = _hiredis_packer()

__all__ = [
    "DEFAULT_PREFIX",
    "RedisLink",
    "ReplyWait",
    "Script",
    "packed",
    "redact_url",
    "split_url",
]


T = TypeVar("T")

DEFAULT_PREFIX = "conveyor:"
CONVEYOR_OPTIONS = (
    "prefix",
    "publish_retries",
    "publish_retry_delay",
    "reply_spin",
    "result_spin",
    *DURABLE_OPTIONS,
)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""Errors that mean Redis could not be reached (BusyLoadingError is a ConnectionError)."""

_DEFAULTS: dict[str, Any] = {
    "socket_connect_timeout": 5.0,
    "socket_timeout": 30.0,
    "socket_keepalive": True,
}
"""Connection settings unless the URL's query says otherwise: a dead host (no RST) is
noticed within the socket timeout instead of hanging a worker for ever."""


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """Conveyor's options out of a Redis URL: (the URL for redis-py, the options)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", *SENTINEL_SCHEMES):
        raise ImproperlyConfigured(f"not a Redis URL: {redact_url(url)!r}")
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in CONVEYOR_OPTIONS:
            ours[name] = value
        else:
            theirs.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(theirs))), ours


def number_option(options: dict[str, str], name: str, default: float, url: str) -> float:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"bad {name} in {redact_url(url)!r}: {raw!r} is not a number"
        ) from None
    if value < 0:
        raise ImproperlyConfigured(f"bad {name} in {redact_url(url)!r}: negative")
    return value


class RedisLink:
    """A connection pool to one Redis database, and the URL to name in errors."""

    def __init__(self, url: str, *, prefix: str | None = None, **redis_options: Any) -> None:
        redis_url, self.options = split_url(url)
        self.url = url
        self.safe_url = redact_url(url)
        self.prefix = prefix if prefix is not None else self.options.get("prefix", DEFAULT_PREFIX)
        settings = {**_DEFAULTS, "retry": Retry(NoBackoff(), 0), **redis_options}
        try:
            if urlsplit(redis_url).scheme in SENTINEL_SCHEMES:
                self.pool: redis.ConnectionPool = sentinel_pool(redis_url, settings)
            else:
                self.pool = redis.ConnectionPool.from_url(redis_url, **settings)
        except (ValueError, TypeError) as exc:
            reason = redact_text(str(exc), url)
            raise ImproperlyConfigured(f"bad Redis URL {self.safe_url!r}: {reason}") from None
        self.client = redis.Redis(connection_pool=self.pool)
        self._own = threading.local()
        self._owned: list[Any] = []
        self._owned_lock = threading.Lock()
        timeout = self.pool.connection_kwargs.get("socket_timeout")
        self.block_limit = 5.0 if timeout is None else max(0.1, min(5.0, float(timeout) / 2))
        """Longest single blocking call, kept well under the socket timeout."""
        self.reply_spin = number_option(self.options, "reply_spin", 500, url) / 1e6
        """Seconds to poll for a quick command's reply before sleeping (``ReplyWait``)."""
        self.result_spin = number_option(self.options, "result_spin", 1000, url) / 1e6
        """Seconds a blocking wait for a result polls before sleeping (``command(spin=True)``)."""
        self.durable = durability(self.options, url)
        """What each script call waits for before it returns (``redis_sentinel.py``)."""

    @property
    def db(self) -> int:
        return int(self.pool.connection_kwargs.get("db") or 0)

    def same_database(self, other: RedisLink) -> bool:
        """Whether both links reach the same database of the same server (so one script
        may touch the keys of both)."""
        mine, theirs = self.pool.connection_kwargs, other.pool.connection_kwargs
        fields = ("host", "port", "path", "db", "username")
        return (
            self.pool.connection_class is other.pool.connection_class
            and getattr(self.pool, "service_name", None)
            == getattr(other.pool, "service_name", None)
            and all(mine.get(f) == theirs.get(f) for f in fields)
        )

    def error(self, what: str, exc: BaseException) -> BrokerError:
        reason = redact_text(str(exc), self.url)
        if isinstance(exc, UNREACHABLE):
            return BrokerError(f"Redis at {self.safe_url} is unreachable ({what}): {reason}")
        return BrokerError(f"Redis at {self.safe_url} refused {what}: {reason}")

    def call(
        self,
        what: str,
        fn: Callable[[], T],
        retries: int = 0,
        delay: float = 0.05,
        max_delay: float = 5.0,
    ) -> T:
        """Run ``fn``; retry it ``retries`` times while Redis is unreachable (the delay
        doubling from ``delay``), then raise BrokerError naming the URL.

        Only idempotent operations may be retried: after a lost reply the first attempt
        may have been applied already.
        """
        attempt = 0
        while True:
            try:
                return fn()
            except UNREACHABLE as exc:
                if attempt >= retries:
                    raise self.error(what, exc) from exc
            except RedisError as exc:
                raise self.error(what, exc) from exc
            time.sleep(min(delay * 2**attempt, max_delay))
            attempt += 1

    def command(self, *args: Any, blocking: bool = False, spin: bool = False) -> Any:
        """One command on this thread's own connection, and its raw reply.

        redis-py's client and pool layers cost about a third more CPU per command than the
        command itself; the worker's hot path and every send go through here. A connection
        whose reply was not read (an error, or an interrupt such as a time limit landing
        mid-command) is dropped, and the next command reconnects. ``blocking``: a command
        that waits on purpose (BLPOP), whose reply is not polled for unless ``spin``: a
        caller blocked on a result polls for up to ``result_spin`` first, so a quick task's
        result does not have to wake it.
        """
        connection, own = self._connection()
        try:
            if connection._sock is None:  # connect() first: a Sentinel-managed connection
                connection.connect()  # asks for the master there, send_command would not
            command = packed(args)
            if command is None:
                connection.send_command(*args)
            else:
                connection.send_packed_command(command)
            if blocking:
                if spin:
                    own.results.poll(connection._sock)
                return connection.read_response()
            own.replies.poll(connection._sock)
            return connection.read_response()
        except RedisError as exc:
            if isinstance(exc, UNREACHABLE):
                connection.disconnect()
            raise
        except BaseException:
            connection.disconnect()
            raise

    def _connection(self) -> tuple[Any, Any]:
        """This thread's connection, and its state (``replies``, ``results``: ReplyWaits)."""
        own = self._own
        if getattr(own, "pid", None) != os.getpid():
            own.pid = os.getpid()
            own.connection = self.pool.connection_class(**self.pool.connection_kwargs)
            own.replies = ReplyWait(self.reply_spin)
            own.results = ReplyWait(self.result_spin)
            with self._owned_lock:
                self._owned.append(own.connection)
        return own.connection, own

    def confirm(self) -> None:
        """Durable mode: wait until Redis confirms this thread's writes so far (WAIT or
        WAITAOF on the same connection), or raise BrokerError."""
        if self.durable is None:
            return
        try:
            reply = self.command(*self.durable.command(), blocking=True)
        except RedisError as exc:
            if "unknown command" in str(exc).lower():
                raise ImproperlyConfigured(
                    f"durable={self.durable.mode} in {self.safe_url!r} needs "
                    f"{self.durable.command()[0]}, which this Redis does not have "
                    "(WAITAOF came in Redis 7.2): use durable=replica, or a newer Redis"
                ) from None
            raise
        self.durable.check(reply, self.safe_url)

    def pipeline(self, transaction: bool) -> Any:
        return self.client.pipeline(transaction=transaction)

    def script(self, prelude: str | tuple[str, ...], name: str) -> Script:
        return Script(self, prelude, name)

    def close(self) -> None:
        with self._owned_lock:
            owned, self._owned = self._owned, []
        for connection in owned:
            connection.disconnect()  # a connection made before a fork is left to its process
        self.pool.disconnect()


_CAN_POLL = hasattr(select, "poll")  # not on Windows


def packed(args: tuple[Any, ...]) -> list[bytes] | None:
    """``args`` as a command on the wire, packed by hiredis directly: redis-py's packer
    encodes each argument in Python first, ~6 us a command against ~1 us (the same bytes).
    None where hiredis does not take an argument (a bool, None): redis-py's ``send_command``
    then packs it, or raises its error."""
    if _pack is None:
        return None
    try:
        return [_pack(args)]
    except TypeError:
        return None


def _alone() -> bool:
    return threading.active_count() == 1


class ReplyWait:
    """Waits for the reply to a command just sent: polls the socket for a short while
    (``limit`` seconds) before sleeping in the read.

    On a virtual machine a thread that sleeps lets its virtual CPU halt, and waking it
    costs tens of microseconds per reply (on this project's CI machine a PING took about
    85 us sleeping and 30 us polling). Polling pays only while replies come within the
    limit: when most recent polls ran out (a distant or busy server), only every 16th
    command polls, to notice when replies are quick again. A thread that is not alone in
    its process never polls: each poll takes the GIL back from threads doing work.
    """

    __slots__ = ("alone", "count", "limit", "misses", "poller", "sock")

    def __init__(self, limit: float, alone: Callable[[], bool] = _alone) -> None:
        self.limit = limit
        self.alone = alone
        """Whether the calling thread is alone in its process."""
        self.sock: object = None
        self.poller: Any = None
        self.misses = 0.0
        """Running average of polls that ran out (1) or saw the reply (0)."""
        self.count = 0

    def poll(self, sock: Any) -> None:
        """Poll ``sock`` until a reply is readable or the limit passes."""
        self.count += 1
        if self.limit <= 0 or (self.misses > 0.5 and self.count % 16):
            return
        if not self.alone():
            return
        if sock is not self.sock:
            self.sock = sock
            self.poller = None
            if _CAN_POLL and sock is not None and not isinstance(sock, ssl.SSLSocket):
                self.poller = select.poll()  # TLS may hold decrypted bytes the fd does not show
                self.poller.register(sock, select.POLLIN)
        poller = self.poller
        if poller is None:
            return
        clock = time.perf_counter
        deadline = clock() + self.limit
        while not poller.poll(0):
            if clock() > deadline:
                self.misses += (1 - self.misses) / 8
                return
        self.misses -= self.misses / 8


_SOURCES: dict[str, str] = {}


def script_source(name: str) -> str:
    text = _SOURCES.get(name)
    if text is None:
        text = resources.files("conveyor").joinpath("redis_scripts", name).read_text("utf-8")
        _SOURCES[name] = text
    return text


class Script:
    """One Lua script (a shared prelude and a body), run by SHA and loaded when missing."""

    def __init__(self, link: RedisLink, prelude: str | tuple[str, ...], name: str) -> None:
        self.link = link
        self.name = name
        preludes = (prelude,) if isinstance(prelude, str) else prelude
        self.text = "\n".join(script_source(part) for part in (*preludes, name))
        self.sha = hashlib.sha1(self.text.encode("utf-8")).hexdigest()

    def __call__(self, args: Sequence[Any]) -> Any:
        command = self.link.command
        try:
            reply = command("EVALSHA", self.sha, 0, *args)
        except NoScriptError:
            command("SCRIPT", "LOAD", self.text)
            reply = command("EVALSHA", self.sha, 0, *args)
        if self.link.durable is not None:
            self.link.confirm()
        return reply

    def queue(self, pipe: Any, args: Sequence[Any]) -> None:
        """Add a call to a pipeline (``load`` the script first: a pipeline cannot retry)."""
        pipe.execute_command("EVALSHA", self.sha, 0, *args)

    def pipelined(self, calls: Sequence[Sequence[Any]], transaction: bool) -> list[Any]:
        """Many calls in one round trip, loading the script only when Redis lacks it (after a
        restart): then the whole batch runs again, which every caller's script tolerates
        (publish ignores live ids, fenced writes repeat to the same value)."""
        if self.link.durable is not None:
            return self._confirmed(calls, transaction)
        for attempt in (1, 2):
            pipe = self.link.pipeline(transaction)
            for args in calls:
                pipe.execute_command("EVALSHA", self.sha, 0, *args)
            try:
                return list(pipe.execute())
            except NoScriptError:
                if attempt == 2:
                    raise
                self.load()
        raise AssertionError("unreachable")

    def _confirmed(self, calls: Sequence[Sequence[Any]], transaction: bool) -> list[Any]:
        """Durable mode's batch: on this thread's own connection (a MULTI/EXEC when it must
        be atomic), then one WAIT that covers every call of it."""
        command = self.link.command
        for attempt in (1, 2):
            if transaction:
                command("MULTI")
                for args in calls:
                    command("EVALSHA", self.sha, 0, *args)
                replies = list(command("EXEC"))
            else:
                replies = []
                for args in calls:
                    try:
                        replies.append(command("EVALSHA", self.sha, 0, *args))
                    except NoScriptError as exc:
                        replies.append(exc)
            missing = [r for r in replies if isinstance(r, NoScriptError)]
            if missing and attempt == 1:
                self.load()
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            self.link.confirm()
            return replies
        raise AssertionError("unreachable")

    def load(self) -> None:
        self.link.command("SCRIPT", "LOAD", self.text)
