"""The Redis store: keys, layouts, records and users, through redis-py on both doors.

Records are the plans of :mod:`websession.stores.redis_records` (the string layout's
compare-and-set, the hash layout's scripts), users and devices those of
:mod:`websession.stores.redis_users`; this module chooses the clients and drives the plans
(:mod:`.wire`, over the connections of :mod:`.connections`). Every request costs at most the
round trips it must: no cookie, none; an unchanged session, one (``GETEX`` reads it and moves
its expiry); a changed one, two (the read, then one script call that applies the changes).

What Redis guarantees the store: one command or script runs alone (Redis is single-threaded),
so create, update and take are atomic; records expire by themselves (native TTL). What it does
not: on Redis Cluster no command spans two hash slots, so the user index and the records are
written in separate, ordered steps; under ``maxmemory`` a live session may be evicted; after a
failover the new primary may miss the last writes (replication is asynchronous).

Example::

    >>> store = RedisStore(url="redis://localhost:6379/0", prefix="doctest:")
    >>> store.read("0" * 40, None) is None
    True
    >>> store.close()
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar, get_args

import redis.exceptions

from ... import codec
from ...changes import Changes
from ...errors import ConfigurationError
from ...ids import generate_uuid, is_valid_uuid
from ..base import Clock, Record, utcnow
from ..redis_commands import Steps
from ..redis_records import Format, Layout
from ..redis_users import UserIndex
from ..steps import RoundTrips, UserIndexDoors, counting
from .connections import Held, Lane, connect, is_async_client, is_cluster, within
from .errors import FAILURES, during, unavailable
from .maintenance import RedisMaintenance
from .wire import adrive, adrive_held, drive, drive_held

T = TypeVar("T")


class RedisStore(UserIndexDoors, RedisMaintenance):
    """Records in Redis, through redis-py. See :mod:`websession.stores.redis` for layouts and
    formats.

    ``url``: ``redis://``, ``rediss://`` (TLS), ``redis+cluster://`` / ``rediss+cluster://``
    (Redis Cluster); clients are made on first use with ``timeout`` seconds for connecting
    and for each reply (the async door allows ``timeout`` for each whole store operation,
    given clients included), and (plain Redis) a pool of up to ``max_connections``
    connections per door in which a request waits up to ``timeout`` for a free connection.
    ``client``: a ``redis.Redis``, ``redis.cluster.RedisCluster``, a Sentinel
    ``master_for(...)`` client, or their ``redis.asyncio`` twins; it serves its own door only
    and is not closed by :meth:`close`.
    """

    kind = "redis"
    native_ttl = True
    atomic_changes = True
    atomic_take = True
    counts_round_trips = True
    user_index = True

    def __init__(
        self,
        *,
        url: str | None = None,
        client: Any = None,
        prefix: str = "session:",
        default_ttl: float | None = 604800,
        format: Format = "remix",
        layout: Layout = "string",
        timeout: float | None = 5.0,
        max_connections: int = 100,
        clock: Clock = utcnow,
        storage_key_secret: str | bytes | None = None,
    ) -> None:
        super().__init__(default_ttl=default_ttl, clock=clock, storage_key_secret=storage_key_secret)
        if (url is None) == (client is None):
            raise ConfigurationError(
                "the redis store needs exactly one of url=... or client=...",
                solution="pass url='redis://localhost:6379/0', or a redis-py client as client=",
            )
        if format not in get_args(Format):
            raise ConfigurationError(f"redis format {format!r} is not 'remix' or 'remix-v3'")
        if layout not in get_args(Layout):
            raise ConfigurationError(f"redis layout {layout!r} is not 'string' or 'hash'")
        if format == "remix-v3" and layout != "string":
            raise ConfigurationError(
                "the remix-v3 format stores [values, flash] as one string",
                solution="use layout='string' with format='remix-v3'",
            )
        if default_ttl is not None and default_ttl <= 0:
            raise ConfigurationError("ttl must be a positive number of seconds, or None for no expiry")
        self.url = url
        self.prefix = prefix
        self.format: Format = format
        self.layout: Layout = layout
        self.timeout = timeout
        if max_connections < 1:
            raise ConfigurationError("max_connections must be at least 1")
        self.max_connections = max_connections
        self._decode: Callable[[bytes], dict[str, Any]] = (
            codec.decode_v3 if format == "remix-v3" else codec.decode_record
        )
        self._encode: Callable[[Mapping[str, Any]], bytes] = (
            codec.encode_v3 if format == "remix-v3" else codec.encode
        )
        self._given_sync: Any = None
        self._given_async: Any = None
        if client is not None:
            if is_async_client(client):
                self._given_async = client
            else:
                self._given_sync = client
        self._sync: Any = None
        self._sync_held: Held | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Lane] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        #: On Redis Cluster the index and the records are in different slots (redis_users).
        self.cluster = is_cluster(url, client)
        self._users = UserIndex(
            self,
            prefix,
            decode=self._decode_value,
            encode=self._encode,
            layout=layout,
            cluster=self.cluster,
            create_record=self._plan_create,
            take_record=self._plan_take,
        )

    def __repr__(self) -> str:
        source = "client" if self.url is None else "url"
        return f"RedisStore({source}, prefix={self.prefix!r}, format={self.format!r}, layout={self.layout!r})"

    # -- ids -------------------------------------------------------------------------------

    def new_id(self) -> str:
        return generate_uuid() if self.format == "remix-v3" else super().new_id()

    def is_valid_id(self, value: object) -> bool:
        return is_valid_uuid(value) if self.format == "remix-v3" else super().is_valid_id(value)

    # -- the sync door ---------------------------------------------------------------------

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return self._run(self._plan_create(data, expires), "create")

    def read(self, id: str, touch: datetime | None) -> Record | None:
        return self._run(self._plan_read(id, touch), "read")

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        return self._run(self._plan_update(id, changes, expires, seen), "update")

    def delete(self, id: str) -> None:
        self._run(self._plan_delete(id), "delete")

    def take(self, id: str) -> Record | None:
        return self._run(self._plan_take(id), "take")

    def close(self) -> None:
        """Close the sync client this store made from its url (a given client stays open)."""
        with self._lock:
            client, self._sync = self._sync, None
            self._sync_held = None
        if client is not None:
            client.close()

    # -- the async door --------------------------------------------------------------------

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return await self._arun(self._plan_create(data, expires), "create")

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        return await self._arun(self._plan_read(id, touch), "read")

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        return await self._arun(self._plan_update(id, changes, expires, seen), "update")

    async def adelete(self, id: str) -> None:
        await self._arun(self._plan_delete(id), "delete")

    async def atake(self, id: str) -> Record | None:
        return await self._arun(self._plan_take(id), "take")

    async def aclose(self) -> None:
        """Close the clients this store made: this event loop's async client and the sync one."""
        loop = asyncio.get_running_loop()
        client = self._async.pop(loop, None)
        self._async.clear()  # clients of other (usually closed) loops cannot be awaited here
        for lane in self._lanes.values():
            lane.stop()
        self._lanes.clear()
        if client is not None:
            await client.aclose()
        self.close()

    # -- round trips, for websession.telemetry -----------------------------------------------

    def counted(self, trips: RoundTrips, operation: str, *args: Any) -> Any:
        """Run ``operation`` (``"read"``, ``"create"``, ``"update"``, ``"delete"`` or ``"take"``,
        with that method's arguments) through the sync door, adding each command it sends to
        ``trips``: a compare-and-set that retries counts every try.

        How :func:`websession.telemetry.instrument` reports round trips; the plain methods
        keep no count. A NOSCRIPT answer followed by EVAL, or a command sent again on a fresh
        connection after the old one dropped, is one more round trip that is not counted.
        Example::

            >>> from websession.stores.steps import RoundTrips
            >>> store, trips = RedisStore(url="redis://localhost:6379/0", prefix="doctest:"), RoundTrips()
            >>> store.counted(trips, "read", "0" * 40, None), trips.count
            (None, 1)
            >>> store.close()
        """
        if getattr(type(self), operation) is not getattr(RedisStore, operation):
            return getattr(self, operation)(*args)  # a subclass's own method: run it, uncounted
        return self._run(counting(self._plans[operation](self, *args), trips), operation)

    async def acounted(self, trips: RoundTrips, operation: str, *args: Any) -> Any:
        """Async twin of :meth:`counted`."""
        name = "a" + operation
        if getattr(type(self), name) is not getattr(RedisStore, name):
            return await getattr(self, name)(*args)
        return await self._arun(counting(self._plans[operation](self, *args), trips), operation)

    # -- the doors' drivers ----------------------------------------------------------------
    #
    # Users and devices go through these too (UserIndexDoors): one script per operation on a
    # single server, the cluster ordering on Redis Cluster (websession.stores.redis_users).

    def _run(self, steps: Steps[T], operation: str) -> T:
        client = self._sync_client()
        with during(operation):
            try:
                held = self._sync_held
                if held is not None:
                    return drive_held(held, steps)
                return drive(client, steps)
            except redis.exceptions.ResponseError as exc:
                missing: T = self._wrong_type(operation, exc)
                return missing

    async def _arun(self, steps: Steps[T], operation: str) -> T:
        lane = self._lanes.get(asyncio.get_running_loop()) or self._lane()
        # Written out rather than with a context manager: one per operation shows up in the
        # profile of a loopback round trip.
        try:
            work = adrive(lane.client, steps) if lane.held is None else adrive_held(lane.held, steps)
            if lane.deadlines is not None:
                return await lane.deadlines.run(work)
            if self.timeout is None:
                return await work
            return await within(self.timeout, work)
        except redis.exceptions.ResponseError as exc:
            with during(operation):  # what is not a wrong type is a failure, as on the sync door
                missing: T = self._wrong_type(operation, exc)
            return missing
        except asyncio.TimeoutError:
            cause = redis.exceptions.TimeoutError(f"no reply within {self.timeout} s")
            raise unavailable(cause, operation) from cause
        except FAILURES:
            with during(operation):
                raise

    def _lane(self) -> Lane:
        """This event loop's client, held connections and deadlines, made on first use."""
        loop = asyncio.get_running_loop()
        client = self._async_client()
        lane = self._lanes[loop] = Lane.of(loop, client, hold=self._given_async is None, timeout=self.timeout)
        return lane

    def _wrong_type(self, operation: str, exc: redis.exceptions.ResponseError) -> Any:
        """A key of another type (a list, a set) under a session's name is a corrupt record:
        reading or updating it finds no session, as for any unreadable record; not an error."""
        if "WRONGTYPE" not in str(exc) or operation not in ("read", "update"):
            raise exc
        codec.log_corrupt(self.kind, "", exc)
        return None

    def _sync_client(self) -> Any:
        if self._given_sync is not None:
            return self._given_sync
        if self._given_async is not None:
            raise _no_door("sync")
        with self._lock:
            if self._sync is None:
                self._sync = self._build(asynchronous=False)
                self._sync_held = Held.of(self._sync)
            return self._sync

    def _async_client(self) -> Any:
        if self._given_async is not None:
            return self._given_async
        if self._given_sync is not None:
            raise _no_door("async")
        # An asyncio client belongs to the loop it first ran on: keep one per loop.
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = self._build(asynchronous=True)
        return client

    def _build(self, *, asynchronous: bool) -> Any:
        assert self.url is not None
        return connect(
            self.url, asynchronous=asynchronous, timeout=self.timeout, max_connections=self.max_connections
        )


def _no_door(door: str) -> ConfigurationError:
    """A given client serves its own door only: the error of calling the other one."""
    if door == "sync":
        given, instead = "an async client", "the a* methods (aget_session, acommit_session)"
        clients = "redis.Redis / redis.cluster.RedisCluster"
    else:
        given, instead = "a sync client", "the sync methods (get_session, commit_session)"
        clients = "redis.asyncio.Redis / redis.asyncio.cluster.RedisCluster"
    return ConfigurationError(
        f"this redis storage was given {given}, so it has no {door} door",
        solution=f"call {instead}, or pass a {clients} as client=, or pass url=",
    )


__all__ = ["Format", "Layout", "RedisStore"]
