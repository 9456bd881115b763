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
scripts                ``functions``: run the Lua scripts as Redis 7 functions   auto
                       (FCALL); ``eval``: by EVALSHA; ``auto``: functions where
                       the server is Redis 7 or later
=====================  ========================================================  =========

Connections come from a redis-py ``ConnectionPool``, which notices a fork (it compares
pids) and opens fresh sockets in the child, so a forked worker never shares its parent's.
redis-py's own retrying is turned off: a command that cannot reach Redis fails at once,
and the broker and backend decide what to retry (see ``RedisLink.call``).

A quick command's reply is first polled for (``reply_spin``), and so is a result that a
``get()`` blocks on (``result_spin``): see ``ReplyWait``, and ``LoopSpin`` for coroutines.

Each Lua script is a shared prelude and a body (``Script``). Redis runs an EVAL script's
whole text on every call, and each ``local function`` of a prelude makes a closure each
time: the broker's prelude cost Redis about 9 us of CPU a call when calls come one at a
time (a lone send, a round trip), more than many scripts' own work. A Redis 7 function
library's top level runs once, when it is loaded, and an FCALL runs only the function;
so where the server has functions each script is a library of its own (named after the
SHA-1 of its text, so versions live side by side), whose one function takes the call's
arguments as ARGV, runs the prelude's ``begin()`` and then the body. Elsewhere the same
text goes by EVALSHA, with ``begin()`` called first. Either is loaded when Redis says it
lacks it (first use, a restart without persistence).
"""

from __future__ import annotations

import hashlib
import re
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
from .pids import current_pid
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
    "PollHistory",
    "RedisLink",
    "ReplyWait",
    "Script",
    "packed",
    "redact_url",
    "refuses_functions",
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
    "scripts",
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
        mode = self.options.get("scripts", "auto")
        if mode not in ("auto", "eval", "functions"):
            raise ImproperlyConfigured(
                f"bad Redis URL {self.safe_url!r}: scripts={mode!r}: use auto, eval or functions"
            )
        self._functions: bool | None = None if mode == "auto" else mode == "functions"
        self._major: int | None = None

    def server_major(self) -> int:
        """The server's major version (asked once; 0 when INFO is refused, as by an ACL)."""
        if self._major is None:
            try:
                info = self.client.info("server")
            except redis.ResponseError:
                info = {}
            self.server_is(info)
        return self._major or 0

    def functions(self) -> bool:
        """Whether scripts run as Redis functions (FCALL): the ``scripts`` option, or for
        ``auto`` whether the server is Redis 7 or later."""
        if self._functions is None:
            self._functions = self.server_major() >= 7
        return self._functions

    def knows_functions(self) -> bool:
        """Whether ``functions`` is known without asking the server."""
        return self._functions is not None or self._major is not None

    def server_is(self, info: dict[str, Any] | bytes) -> None:
        """Note the server's major version from its ``INFO server``, parsed by redis-py or
        as sent."""
        if isinstance(info, bytes):
            found = re.search(rb"^redis_version:(\d+)", info, re.MULTILINE)
            major = found.group(1).decode() if found else "0"
        else:
            major = str(info.get("redis_version", "0")).split(".")[0]
        self._major = int(major) if major.isdigit() else 0

    def no_functions(self) -> None:
        """The server refused FUNCTION LOAD or FCALL as unknown: scripts go by EVALSHA."""
        self._functions = False

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

    def commands(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one write on this thread's own connection, and their raw
        replies in order, an error reply in its place (an unreachable Redis raises)."""
        connection, _ = self._connection()
        try:
            if connection._sock is None:
                connection.connect()
            chunks = [packed(command) for command in commands]
            if any(chunk is None for chunk in chunks):
                connection.send_packed_command(connection.pack_commands(commands))
            else:  # hiredis packs each directly: redis-py's packer is ~5x the cost
                connection.send_packed_command([b"".join(c[0] for c in chunks if c)])
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except RedisError as exc:
                    if isinstance(exc, UNREACHABLE):
                        raise
                    replies.append(exc)
        except BaseException:
            connection.disconnect()
            raise
        return replies

    def _connection(self) -> tuple[Any, Any]:
        """This thread's connection, and its state (``replies``, ``results``: ReplyWaits)."""
        own = self._own
        if getattr(own, "pid", None) != current_pid():
            own.pid = current_pid()
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


class PollHistory:
    """Whether a wait for a reply polls first, from how its recent polls went (``limit``:
    seconds a poll may last; 0: never). Polling pays only while replies come within the
    limit: when most recent polls ran out (a distant or busy server), only every 16th
    wait polls, to notice when replies are quick again."""

    __slots__ = ("count", "limit", "misses")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.misses = 0.0
        """Running average of polls that ran out (1) or saw the reply (0)."""
        self.count = 0

    def due(self) -> bool:
        """Whether this wait polls (each call counts one wait)."""
        self.count += 1
        return self.limit > 0 and (self.misses <= 0.5 or not self.count % 16)

    def polled(self, ran_out: bool) -> None:
        """A poll ended: it ran out, or saw the reply."""
        if ran_out:
            self.misses += (1 - self.misses) / 8
        else:
            self.misses -= self.misses / 8


class ReplyWait(PollHistory):
    """Waits for the reply to a command just sent: polls the socket for a short while
    (``limit`` seconds) before sleeping in the read.

    On a virtual machine a thread that sleeps lets its virtual CPU halt, and waking it
    costs tens of microseconds per reply (on this project's CI machine a PING took about
    85 us sleeping and 30 us polling). A thread that is not alone in its process never
    polls: each poll takes the GIL back from threads doing work.
    """

    __slots__ = ("alone", "poller", "sock")

    def __init__(self, limit: float, alone: Callable[[], bool] = _alone) -> None:
        super().__init__(limit)
        self.alone = alone
        """Whether the calling thread is alone in its process."""
        self.sock: object = None
        self.poller: Any = None

    def poll(self, sock: Any) -> None:
        """Poll ``sock`` until a reply is readable or the limit passes."""
        if not self.due() or not self.alone():
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
                self.polled(ran_out=True)
                return
        self.polled(ran_out=False)


_SOURCES: dict[str, str] = {}


def script_source(name: str) -> str:
    text = _SOURCES.get(name)
    if text is None:
        text = resources.files("conveyor").joinpath("redis_scripts", name).read_text("utf-8")
        _SOURCES[name] = text
    return text


class Script:
    """One Lua script (shared preludes and a body), run as a Redis function where the link
    uses them (``RedisLink.functions``), else by SHA; loaded when Redis lacks it."""

    def __init__(self, link: RedisLink, prelude: str | tuple[str, ...], name: str) -> None:
        self.link = link
        self.name = name
        preludes = (prelude,) if isinstance(prelude, str) else prelude
        head = "\n".join(script_source(part) for part in preludes)
        body = script_source(name)
        start = "begin()\n" if "local function begin()" in head else ""
        self.text = f"{head}\n{start}{body}"
        self.sha = hashlib.sha1(self.text.encode("utf-8")).hexdigest()
        self.function = f"conveyor_{self.sha}"
        self.library = (
            f"#!lua name={self.function}\nlocal ARGV\n{head}\n"
            f"redis.register_function('{self.function}', function(_, args)\n"
            f"ARGV = args\n{start}{body}\nend)\n"
        )

    def invocation(self, args: Sequence[Any]) -> tuple[Any, ...]:
        if self.link.functions():
            return ("FCALL", self.function, 0, *args)
        return ("EVALSHA", self.sha, 0, *args)

    def __call__(self, args: Sequence[Any]) -> Any:
        command = self.link.command
        try:
            reply = command(*self.invocation(args))
        except RedisError as exc:
            if not self.missing(exc):
                raise
            self.load()
            reply = command(*self.invocation(args))
        if self.link.durable is not None:
            self.link.confirm()
        return reply

    def queue(self, pipe: Any, args: Sequence[Any]) -> None:
        """Add a call to a pipeline (``load`` the script first: a pipeline cannot retry)."""
        pipe.execute_command(*self.invocation(args))

    def pipelined(self, calls: Sequence[Sequence[Any]], transaction: bool) -> list[Any]:
        """Many calls in one round trip, loading the script only when Redis lacks it (after a
        restart, or on the cluster node a slot moved to): then the calls it refused run
        again, alone. The others ran: a batch can be half done, and sending those again
        would act twice (a message handed back, then taken and handed back once more)."""
        if self.link.durable is not None:
            return self._confirmed(calls, transaction)
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in (1, 2):
            pipe = self.link.pipeline(transaction)
            for at in pending:
                pipe.execute_command(*self.invocation(calls[at]))
            for at, reply in zip(pending, pipe.execute(raise_on_error=False), strict=True):
                replies[at] = reply
            pending = [at for at in pending if self.refused(replies[at])]
            if not pending or attempt == 2:
                break
            self.load()
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def refused(self, reply: Any) -> bool:
        """Whether a reply (a pipeline's, errors in place) is Redis lacking this script."""
        return isinstance(reply, RedisError) and self.missing(reply)

    def _confirmed(self, calls: Sequence[Sequence[Any]], transaction: bool) -> list[Any]:
        """Durable mode's batch: on this thread's own connection (a MULTI/EXEC when it must
        be atomic), then one WAIT that covers every call of it."""
        command = self.link.command
        for attempt in (1, 2):
            if transaction:
                command("MULTI")
                for args in calls:
                    command(*self.invocation(args))
                replies = list(command("EXEC"))
            else:
                replies = []
                for args in calls:
                    try:
                        replies.append(command(*self.invocation(args)))
                    except RedisError as exc:
                        replies.append(exc)
            missing = [r for r in replies if isinstance(r, RedisError) and self.missing(r)]
            if missing and attempt == 1:
                self.load()
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            self.link.confirm()
            return replies
        raise AssertionError("unreachable")

    def missing(self, exc: RedisError) -> bool:
        """Whether Redis lacks this script (or function); a server that refuses FCALL
        (does not know it, or an ACL denies it) turns the link to EVALSHA."""
        if isinstance(exc, NoScriptError) or "Function not found" in str(exc):
            return True
        if refuses_functions(exc):
            self.link.no_functions()
            return True
        return False

    def load(self) -> None:
        if self.link.functions():
            try:
                self.link.command("FUNCTION", "LOAD", "REPLACE", self.library)
                return
            except redis.ResponseError as exc:
                if not refuses_functions(exc):
                    raise
                self.link.no_functions()
        self.link.command("SCRIPT", "LOAD", self.text)


def refuses_functions(exc: RedisError) -> bool:
    """Whether the server refused FCALL or FUNCTION as a command it does not know (before
    Redis 7, a Redis-compatible server) or one the connection's ACL user may not run."""
    text = str(exc).lower()
    refused = "unknown command" in text or "no permissions" in text or "noperm" in text
    return refused and ("fcall" in text or "function" in text)
