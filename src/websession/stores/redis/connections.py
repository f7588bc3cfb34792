"""Which connections the Redis store talks over: clients made from a URL, connections held
between operations, and one deadline timer per event loop.

A store built from ``url=`` makes one ``redis.Redis`` (or ``redis.cluster.RedisCluster``) for
the sync door and one asyncio client per event loop for the async door (:func:`connect`). On
plain Redis it holds connections checked out of that client's pool between operations
(:class:`Held`): redis-py's per-command checkout costs more than a loopback round trip. The
async door enforces ``timeout`` once per operation (:class:`Deadlines`, or :func:`within`),
not once per command.

What Redis guarantees the connections: replies on one connection come in the order of the
commands, so a connection interrupted mid-command is disconnected before anyone reuses it (a
late reply must never answer the next request). What it does not: a restart drops every
connection (each command here is safe to repeat, so one is resent once on a fresh one), and
a failover or a full cluster answers with errors that the store turns into
:class:`~websession.errors.StoreUnavailableError` (:mod:`.errors`).

Example::

    >>> redis_url("redis+cluster://10.0.0.1:7000")
    ('redis://10.0.0.1:7000', True)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import sys
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...errors import ConfigurationError
from .errors import during

T = TypeVar("T")


if sys.version_info >= (3, 11):

    async def within(seconds: float, work: Awaitable[T]) -> T:
        """``work``, cancelled after ``seconds``: one timer, no extra task."""
        async with asyncio.timeout(seconds):
            return await work

else:  # pragma: no cover - Python 3.10

    async def within(seconds: float, work: Awaitable[T]) -> T:
        return await asyncio.wait_for(work, seconds)


@dataclass(slots=True)
class Lane:
    """What the async door uses on one event loop."""

    client: Any
    held: Held | None
    deadlines: Deadlines | None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, client: Any, *, hold: bool, timeout: float | None) -> Lane:
        """``client``'s lane on ``loop``: connections held when ``hold`` (for a client the
        store made itself), and one deadline timer when there is a ``timeout``."""
        held = Held.of(client) if hold else None
        deadlines = Deadlines(loop, timeout) if timeout is not None and UNCANCEL else None
        return cls(client, held, deadlines)

    def stop(self) -> None:
        if self.deadlines is not None:
            self.deadlines.stop()


#: Task.uncancel() (3.11+) lets a deadline cancel an operation without swallowing the
#: caller's own cancellations; without it, asyncio.wait_for does the job.
UNCANCEL = sys.version_info >= (3, 11)


class Deadlines:
    """Ends store operations that outlive ``timeout`` seconds, with one timer for all of them.

    A timeout scope per operation (``asyncio.timeout``) costs a timer handle and a state
    machine each time, several microseconds against a loopback round trip of tens. Instead,
    running operations are noted with their start time, and one timer, armed only while any
    run, looks at them every ``timeout / 4`` seconds and cancels those past their time: an
    operation ends between ``timeout`` and 1.25 times ``timeout`` after it started, with
    ``asyncio.TimeoutError``, exactly as under ``asyncio.timeout``.
    """

    __slots__ = ("expired", "handle", "loop", "running", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.running: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self.handle: asyncio.TimerHandle | None = None

    async def run(self, work: Awaitable[T]) -> T:
        task = asyncio.current_task()
        if task is None or task in self.running:  # pragma: no cover - not in a task / nested
            return await within(self.timeout, work)
        counted: Any = task  # Task.cancelling/uncancel are 3.11+; this class is used there only
        cancelling = counted.cancelling()
        self.running[task] = self.loop.time()
        if self.handle is None:
            self.handle = self.loop.call_later(self.timeout / 4, self._check)
        try:
            return await work
        except asyncio.CancelledError:
            # Ours: a timeout (unless the caller cancelled too, which then wins).
            if task in self.expired and counted.uncancel() <= cancelling:
                raise asyncio.TimeoutError from None
            raise
        finally:
            del self.running[task]
            self.expired.discard(task)

    def _check(self) -> None:
        self.handle = None
        if not self.running:
            return
        now = self.loop.time()
        for task, started in self.running.items():
            if now - started >= self.timeout and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        self.handle = self.loop.call_later(self.timeout / 4, self._check)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class Held:
    """Connections a store keeps checked out of its own redis-py pool between operations.

    redis-py's ``execute_command`` takes a connection from the pool and gives it back around
    every command, under a lock, with a readiness probe and observability hooks; on loopback
    that costs more than the round trip itself. Instead, a store operation takes one idle
    connection for all its commands and leaves it idle for the next operation (list pop and
    append are atomic, so threads share the list safely). A connection interrupted in the
    middle of a command is disconnected, so no half-read reply ever reaches another request;
    redis-py reconnects it on its next command. Only clients the store built itself, on a
    plain connection pool, are used this way: a given client keeps its owner's pool rules.
    """

    __slots__ = ("broken", "free", "idle", "limit", "opened", "pool", "waiters")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.idle: list[Any] = []
        # Held connections never go back to the pool, so this class must enforce the pool's
        # limit itself: a request that finds none idle and the limit reached waits for one
        # to be given back (a sync thread on ``free``, an async task on a future in
        # ``waiters``), within the store's timeout, instead of waiting on a pool that will
        # never see them again. Invariant when no operation runs: ``opened <= limit``,
        # every opened connection idle, no waiter left.
        self.limit: int = getattr(pool, "max_connections", None) or sys.maxsize
        self.opened = 0
        self.free = threading.Condition()
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        # Connections interrupted in the middle of a command: a reply may still be on its way,
        # so the next operation disconnects them before use. Marking instead of disconnecting
        # at once keeps every await out of the give-back path, where a second cancellation
        # could otherwise skip the give-back and lose the slot for good.
        self.broken: set[Any] = set()

    @classmethod
    def of(cls, client: Any) -> Held | None:
        plain = isinstance(client, (redis.Redis, redis.asyncio.Redis)) and client.connection is None
        return cls(client.connection_pool) if plain else None

    def _available(self) -> bool:
        return bool(self.idle) or self.opened < self.limit

    def take(self) -> Any:
        """A connection for one sync operation: an idle one, a new one, or the next given back."""
        with self.free:
            # wait_for checks again after a timeout, so a connection given back just as the
            # wait ends is taken rather than left idle behind a "No connection available".
            if not self.free.wait_for(self._available, getattr(self.pool, "timeout", None)):
                raise redis.exceptions.ConnectionError("No connection available.")
            if self.idle:
                return self.idle.pop()
            self.opened += 1
        try:
            return self.pool.get_connection()
        except BaseException:
            with self.free:
                self.opened -= 1
                self.free.notify()  # the slot is free again: a waiting thread may open it
            raise

    def give(self, conn: Any) -> None:
        with self.free:
            self.idle.append(conn)
            self.free.notify()

    async def atake(self) -> Any:
        """The async twin of :meth:`take` (one instance per event loop).

        Nothing here awaits while it owns a connection it has not yet returned: a new one is
        taken from the pool without I/O (it connects on its first command, inside the
        operation's own guard), and a waiter cancelled just after it was handed a connection
        hands it on before the cancellation goes up.
        """
        if self.idle:
            return self.idle.pop()
        if self.opened < self.limit:
            self.opened += 1
            try:
                return self.pool.get_available_connection()
            except BaseException:
                self.opened -= 1
                raise
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.agive(waiter.result())  # handed a connection, then cancelled: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):  # agive may have skipped it already
                    self.waiters.remove(waiter)
            raise

    def agive(self, conn: Any) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():  # a waiter cancelled a moment ago is skipped
                waiter.set_result(conn)
                return
        self.idle.append(conn)


def redis_url(url: str) -> tuple[str, bool]:
    """The URL redis-py understands, and whether it names a cluster.

    Example::

        >>> redis_url("redis+cluster://10.0.0.1:7000")
        ('redis://10.0.0.1:7000', True)
        >>> redis_url("rediss://:pw@cache:6380/2")
        ('rediss://:pw@cache:6380/2', False)
    """
    scheme, sep, rest = url.partition("://")
    base, plus, kind = scheme.lower().partition("+")
    if not sep or base not in ("redis", "rediss") or (plus and kind != "cluster"):
        raise ConfigurationError(
            f"not a redis URL: {url.split('@')[-1]!r}",
            solution="use redis://, rediss://, redis+cluster:// or rediss+cluster://",
        )
    return f"{base}://{rest}", bool(plus)


def is_cluster(url: str | None, client: Any) -> bool:
    """Whether the store talks to Redis Cluster, from its URL or its given client."""
    if url is not None:
        try:
            return redis_url(url)[1]
        except ConfigurationError:
            return False  # reported when the client is made, as it always was
    return isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))


def is_async_client(client: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


def connect(url: str, *, asynchronous: bool, timeout: float | None, max_connections: int) -> Any:
    """A client for one door, made from ``url`` (see :class:`~websession.stores.redis.RedisStore`)."""
    url, cluster = redis_url(url)
    # The async door enforces ``timeout`` once per operation (RedisStore._arun): redis-py's
    # own socket_timeout (5 s unless told otherwise) wraps every command in asyncio.wait_for
    # and every reply in a timeout scope, a task and two timers per command, which cost as
    # much as the round trip itself on loopback.
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout,
        "socket_timeout": None if asynchronous else timeout,
    }
    if cluster:
        factory: Any = redis.asyncio.cluster.RedisCluster if asynchronous else redis.cluster.RedisCluster
        with during("connect"):
            return factory.from_url(url, **options)
    factory = redis.asyncio.Redis if asynchronous else redis.Redis
    # redis-py retries 10 times with backoff by default: seconds per request while the
    # server is down, where a quick 503 serves better. One immediate retry still covers
    # a connection that drops mid-command (a pooled connection that a restart closed is
    # replaced by redis-py when it is checked out). Every command here is safe to repeat.
    options["retry"] = Retry(NoBackoff(), 1)
    # redis-py's default pool raises at once when all its connections are busy, so a burst
    # of concurrent requests got 503s from a healthy server (seen at 200 clients in the
    # load test). A blocking pool makes a request wait for a free connection instead, up
    # to the same timeout as any reply.
    pool_class: Any = redis.asyncio.BlockingConnectionPool if asynchronous else redis.BlockingConnectionPool
    with during("connect"):
        pool = pool_class.from_url(url, max_connections=max_connections, timeout=timeout, **options)
        return factory.from_pool(pool)


__all__ = [
    "UNCANCEL",
    "Deadlines",
    "Held",
    "Lane",
    "connect",
    "is_async_client",
    "is_cluster",
    "redis_url",
    "within",
]
