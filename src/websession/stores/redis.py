"""The Redis store: redis-py, sync and async, plain Redis, Redis Cluster or Sentinel.

One storage object serves both doors. Built from ``url=``, it makes a ``redis.Redis`` for
the sync door and a ``redis.asyncio.Redis`` for the async door, each on first use (and one
async client per event loop, so ``asyncio.run`` twice still works). Handed a ``client=``, it
serves that client's door only; the other door raises :class:`ConfigurationError` naming the
client to pass. redis-py parses replies with hiredis when it is installed.

Every request costs at most the round trips it must: no cookie, none; an unchanged session,
one (``GETEX`` reads it and moves its expiry); a changed one, two (the read, then one script
call that applies the changes).

Layouts (``layout=``):

``"string"`` (the default, what Remix writes)
    ``prefix + id`` holds the JSON of the data. Changes are applied with a compare-and-set
    script (:mod:`websession.stores.redis_cas`): Python applies them to the record it read and
    sends the new record with a digest of the old; the script writes only if the record is
    still the one read, otherwise it returns the current record and Python tries again. The
    script never decodes JSON, so untouched values are never re-encoded by Lua's cjson.

``"hash"``
    ``prefix + id`` is a Redis hash: one field per session key, each value the JSON of that
    value. A commit sets and deletes only the fields it changed, in one script that first
    checks that the hash still exists, so a destroyed session stays destroyed. A field named
    ``""`` with an empty value (never valid JSON, so never data) keeps empty sessions alive.

Users and devices (``session.login``, ``sessions_of``, ``revoke``, ``revoke_user``): each user
has an index, the hash ``prefix + "user:" + user_digest(user)`` (storage key -> entry JSON, and
``#gen``). On one server every index operation is one Lua script over the index and the
records, so a sign-in costs the take of the old record plus one script; on Redis Cluster the
steps are single-key, in the order :mod:`websession.stores.redis_users` explains. Reads and
updates of signed-in sessions cost what any other does.

Formats (``format=``): ``"remix"`` is Remix v2 / React Router's flat JSON object and cookie;
``"remix-v3"`` is ``@remix-run/session-storage-redis``: ``[values, flash]`` records under
UUID ids and the ``@remix-run/cookie`` cookie (string layout only).

Example::

    >>> from websession import create_cookie, create_redis_session_storage
    >>> storage = create_redis_session_storage(
    ...     cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
    ...     url="redis://localhost:6379/0", prefix="myapp:session:")
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import math
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, ClassVar, Literal, TypeVar, get_args
from urllib.parse import SplitResult, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from .. import codec
from ..changes import Changes
from ..codec import CodecLike
from ..cookie import Cookie, CookieLike, as_cookie
from ..errors import ConfigurationError, SessionStoreError, StoreUnavailableError
from ..ids import generate_uuid, is_valid_uuid
from ..storage import SessionStorage
from ..urls import cookie_from_options, reject_unknown, storage_options
from ..users import Device, Entry, Taken
from . import redis_cas
from .base import UNSET, Clock, Record, Store, TtlOption, given_ttl, url_ttl, utcnow
from .redis_users import Batch as _Batch
from .redis_users import Call as _Command
from .redis_users import Eval as _Eval
from .redis_users import Op as _Op
from .redis_users import Script, UserIndex
from .redis_users import Steps as _Steps
from .steps import RoundTrips, counting

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - the hiredis extra is not installed
    _hiredis_pack = None

Format = Literal["remix", "remix-v3"]
Layout = Literal["string", "hash"]

T = TypeVar("T")

#: How many fresh ids a create tries before giving up (a collision needs 128 random bits).
CREATE_ATTEMPTS = 8
#: The hash field that keeps an empty session's hash alive. Its value, b"", is never JSON.
HASH_MARKER = ""
#: Keys asked of SCAN per call, and read (value and PTTL) per pipeline.
SCAN_BATCH = 500
#: Records written per pipeline by ``write_many``.
WRITE_BATCH = 500


#: KEYS[1] the hash; ARGV[1] TTL seconds (0: none); then field, value pairs.
HASH_CREATE = Script.of("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSETNX', KEYS[1], '', '')
local ttl = tonumber(ARGV[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
""")

#: KEYS[1] the hash; ARGV[1] TTL seconds. HGETALL and move the expiry in one round trip.
HASH_READ_TOUCH = Script.of("""
local fields = redis.call('HGETALL', KEYS[1])
if #fields > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return fields
""")

#: KEYS[1] the hash; ARGV[1] TTL seconds (0: none); ARGV[2] n, then n fields to delete, then
#: field, value pairs to set. Returns 0 and writes nothing when the hash is gone.
HASH_UPDATE = Script.of("""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local removed = tonumber(ARGV[2])
for i = 3, 2 + removed do redis.call('HDEL', KEYS[1], ARGV[i]) end
for i = 3 + removed, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSETNX', KEYS[1], '', '')
local ttl = tonumber(ARGV[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return 1
""")

#: KEYS[1] the hash; ARGV[1] 1 to replace, 0 to leave a live hash alone; ARGV[2] PTTL in
#: milliseconds (0: none); then field, value pairs. Returns 1 when it wrote the hash.
HASH_WRITE = Script.of("""
if ARGV[1] == '0' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSETNX', KEYS[1], '', '')
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
""")

#: KEYS[1] the hash. HGETALL and DEL in one step: how regenerate takes a session to move it.
HASH_TAKE = Script.of("""
local fields = redis.call('HGETALL', KEYS[1])
if #fields > 0 then redis.call('DEL', KEYS[1]) end
return fields
""")

CAS = Script(redis_cas.CAS_SCRIPT, redis_cas.CAS_SHA1)


# -- the commands a store operation sends, independent of the door -------------------------
#
# Shared with the user index (websession.stores.redis_users): an operation is a generator that
# yields commands (_Command, _Eval, _Batch), receives their replies and returns its result.
# The sync and async doors only differ in how they send a command.

_UNAVAILABLE = (
    redis.exceptions.ConnectionError,  # refused, reset, closed by a restart, loading
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,  # a failover made our node a replica
    redis.exceptions.RedisClusterException,  # no reachable node, slots not covered
)


@contextlib.contextmanager
def _translated(operation: str) -> Iterator[None]:
    """Raise websession's errors for redis-py's, keeping the cause."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailableError(f"redis store unavailable during {operation}: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise SessionStoreError(f"redis store failed during {operation}: {exc}") from exc


def _as_bytes(reply: Any) -> bytes:
    """Replies are bytes, or str from a client made with decode_responses=True."""
    return reply.encode("utf-8") if isinstance(reply, str) else bytes(reply)


def _text(reply: Any) -> str:
    return reply if isinstance(reply, str) else bytes(reply).decode("utf-8")


def _pairs(reply: Any) -> list[tuple[Any, Any]]:
    """HGETALL's reply as pairs: redis-py gives a dict, a script gives a flat list."""
    if isinstance(reply, dict):
        return list(reply.items())
    items = list(reply or ())
    return list(zip(items[0::2], items[1::2], strict=True))


def _is_cluster(url: str | None, client: Any) -> bool:
    if url is not None:
        try:
            return redis_url(url)[1]
        except ConfigurationError:
            return False  # reported when the client is made, as it always was
    return isinstance(client, (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster))


def _is_async_client(client: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


class RedisStore(Store):
    """Records in Redis, through redis-py. See the module docstring for layouts and formats.

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
            if _is_async_client(client):
                self._given_async = client
            else:
                self._given_sync = client
        self._sync: Any = None
        self._sync_held: _Held | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        #: On Redis Cluster the index and the records are in different slots (redis_users).
        self.cluster = _is_cluster(url, client)
        self._users = UserIndex(
            self,
            prefix,
            decode=self._decode_value,
            encode=self._encode,
            layout=layout,
            cluster=self.cluster,
            create_record=self._create,
            take_record=self._take,
        )

    def __repr__(self) -> str:
        source = "client" if self.url is None else "url"
        return f"RedisStore({source}, prefix={self.prefix!r}, format={self.format!r}, layout={self.layout!r})"

    # -- ids -------------------------------------------------------------------------------

    def new_id(self) -> str:
        return generate_uuid() if self.format == "remix-v3" else super().new_id()

    def is_valid_id(self, value: object) -> bool:
        return is_valid_uuid(value) if self.format == "remix-v3" else super().is_valid_id(value)

    def key(self, id: str) -> str:
        """The Redis key of a session id: the prefix and its storage key (the id itself, or
        its keyed hash with ``storage_key_secret``)."""
        return self.prefix + self.storage_key(id)

    # -- the sync door ---------------------------------------------------------------------

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return self._run(self._create(data, expires), "create")

    def read(self, id: str, touch: datetime | None) -> Record | None:
        return self._run(self._read(id, touch), "read")

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        return self._run(self._update(id, changes, expires, seen), "update")

    def delete(self, id: str) -> None:
        self._run(self._delete(id), "delete")

    def take(self, id: str) -> Record | None:
        return self._run(self._take(id), "take")

    def close(self) -> None:
        """Close the sync client this store made from its url (a given client stays open)."""
        with self._lock:
            client, self._sync = self._sync, None
            self._sync_held = None
        if client is not None:
            client.close()

    # -- the async door --------------------------------------------------------------------

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        return await self._arun(self._create(data, expires), "create")

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        return await self._arun(self._read(id, touch), "read")

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        return await self._arun(self._update(id, changes, expires, seen), "update")

    async def adelete(self, id: str) -> None:
        await self._arun(self._delete(id), "delete")

    async def atake(self, id: str) -> Record | None:
        return await self._arun(self._take(id), "take")

    async def aclose(self) -> None:
        """Close the clients this store made: this event loop's async client and the sync one."""
        loop = asyncio.get_running_loop()
        client = self._async.pop(loop, None)
        self._async.clear()  # clients of other (usually closed) loops cannot be awaited here
        for lane in self._lanes.values():
            if lane.deadlines is not None:
                lane.deadlines.stop()
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
        return self._run(counting(self._operations[operation](self, *args), trips), operation)

    async def acounted(self, trips: RoundTrips, operation: str, *args: Any) -> Any:
        """Async twin of :meth:`counted`."""
        name = "a" + operation
        if getattr(type(self), name) is not getattr(RedisStore, name):
            return await getattr(self, name)(*args)
        return await self._arun(counting(self._operations[operation](self, *args), trips), operation)

    # -- users and their devices -------------------------------------------------------------
    #
    # One script per operation on a single server, the cluster ordering on Redis Cluster:
    # websession.stores.redis_users. Reads and updates are not touched: a signed-in request
    # costs what any other does.

    def create_for_user(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> str | None:
        return self._run(self._users.create(data, expires, user, entry, generation), "create_for_user")

    def take_for_user(self, id: str, user: str) -> Taken:
        return self._run(self._users.take(id, user), "take_for_user")

    def sessions_of(self, user: str) -> list[Device]:
        return self._run(self._users.sessions(user), "sessions_of")

    def revoke(self, key: str, user: str) -> bool:
        return self._run(self._users.revoke(key, user), "revoke")

    def revoke_user(self, user: str, keep: str | None) -> int:
        return self._run(self._users.revoke_user(user, keep), "revoke_user")

    def generation(self, user: str, *, bump: bool = False) -> int:
        return self._run(self._users.generation(user, bump=bump), "generation")

    async def acreate_for_user(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> str | None:
        return await self._arun(self._users.create(data, expires, user, entry, generation), "create_for_user")

    async def atake_for_user(self, id: str, user: str) -> Taken:
        return await self._arun(self._users.take(id, user), "take_for_user")

    async def asessions_of(self, user: str) -> list[Device]:
        return await self._arun(self._users.sessions(user), "sessions_of")

    async def arevoke(self, key: str, user: str) -> bool:
        return await self._arun(self._users.revoke(key, user), "revoke")

    async def arevoke_user(self, user: str, keep: str | None) -> int:
        return await self._arun(self._users.revoke_user(user, keep), "revoke_user")

    async def ageneration(self, user: str, *, bump: bool = False) -> int:
        return await self._arun(self._users.generation(user, bump=bump), "generation")

    # -- maintenance -----------------------------------------------------------------------
    #
    # Sync only, for the `websession` command. Keys are found with SCAN MATCH on the escaped
    # prefix (never KEYS); on a cluster redis-py sends SCAN to every primary. Values and TTLs
    # travel in pipelines of a few hundred commands, so memory holds one batch.

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Yield every live session under the prefix with its expiry (from ``PTTL``), a batch
        of keys at a time. An id may come twice when Redis resizes its table meanwhile."""
        client = self._sync_client()
        start = len(self.prefix)
        batch: list[bytes | str] = []
        for key in self._keys(client, "scan"):
            if not self.is_storage_key(_text(key)[start:]):
                continue  # not a session: a user's index, or someone else's key
            batch.append(key)
            if len(batch) >= SCAN_BATCH:
                yield from self._scan_batch(client, batch)
                batch = []
        if batch:
            yield from self._scan_batch(client, batch)

    def count(self) -> int:
        """Keys under the prefix that name a session, counted with SCAN without reading values.

        SCAN walks the whole database (every key, whatever its prefix), so this is not cheap;
        like :meth:`scan` it may count a key twice if Redis resizes its table meanwhile.
        """
        client = self._sync_client()
        start = len(self.prefix)
        return sum(1 for key in self._keys(client, "count") if self.is_storage_key(_text(key)[start:]))

    def peek(self, id: str) -> Record | None:
        """The record and its expiry, untouched: GET (HGETALL) and PTTL in one round trip."""
        found = list(self._scan_batch(self._sync_client(), [self.key(id)]))
        return found[0][1] if found else None

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        """``SET key value PX ms`` (``NX`` with ``replace=False``); a hash is replaced whole."""
        return self.write_many([(id, Record(dict(data), expires))], replace=replace) == 1

    def write_many(self, records: Iterable[tuple[str, Record]], *, replace: bool = True) -> int:
        """Write records under their ids, pipelined ``WRITE_BATCH`` at a time.

        The string layout sends ``SET key value PX <ms> [NX]``; the hash layout one script per
        record that replaces the hash (or leaves a live one alone) and sets its ``PEXPIRE``.
        Lifetimes carry over to the millisecond; records already expired are not sent.
        """
        client = self._sync_client()
        written = 0
        pending = iter(records)
        while batch := list(islice(pending, WRITE_BATCH)):
            pipe = client.pipeline(transaction=False)
            now = self.clock()
            sent = 0
            for id, record in batch:
                if self.is_expired(record.expires):
                    continue
                ttl_ms = _milliseconds_until(record.expires, now)
                key = self.key(id)
                if self.layout == "hash":
                    fields = (
                        part for name, value in record.data.items() for part in (name, codec.dumps(value))
                    )
                    pipe.execute_command(
                        "EVAL", HASH_WRITE.source, 1, key, int(replace), ttl_ms or 0, *fields
                    )
                else:
                    args: list[Any] = ["SET", key, self._encode(record.data)]
                    if ttl_ms is not None:
                        args += ["PX", ttl_ms]
                    if not replace:
                        args.append("NX")
                    pipe.execute_command(*args)
                sent += 1
            if sent:
                with _translated("write"):
                    written += sum(1 for reply in pipe.execute() if reply)
        return written

    def _keys(self, client: Any, operation: str) -> Iterator[bytes | str]:
        pattern = _glob_escape(self.prefix) + "*"
        keys = client.scan_iter(match=pattern, count=SCAN_BATCH)
        while True:
            with _translated(operation):
                key = next(keys, None)
            if key is None:
                return
            yield key

    def _scan_batch(self, client: Any, keys: list[bytes | str]) -> Iterator[tuple[str, Record]]:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            if self.layout == "hash":
                pipe.hgetall(key)
            else:
                pipe.get(key)
            pipe.pttl(key)
        with _translated("scan"):
            # A key of another type under the prefix answers WRONGTYPE: skip it, not the scan.
            replies = pipe.execute(raise_on_error=False)
        now = self.clock()
        for key, value, pttl in zip(keys, replies[0::2], replies[1::2], strict=True):
            id = _text(key)[len(self.prefix) :]
            if not self.is_storage_key(id) or isinstance(pttl, Exception) or pttl == -2:
                continue
            if isinstance(value, Exception):
                codec.log_corrupt(self.kind, id, value)
                continue
            if not value:
                continue
            data = self._decode_value(id, value)
            if data is not None:
                expires = None if pttl < 0 else now + timedelta(milliseconds=pttl)
                yield id, Record(data, expires, None if self.layout == "hash" else _as_bytes(value))

    # -- the operations, written once for both doors ----------------------------------------

    def _create(self, data: Mapping[str, Any], expires: datetime | None) -> _Steps[str]:
        ttl = self.seconds_until(expires)
        # Encoded once; only the id changes between tries.
        args: tuple[Any, ...]
        if self.layout == "hash":
            args = (ttl or 0, *(part for key, value in data.items() for part in (key, codec.dumps(value))))
        else:
            args = (self._encode(data), "NX", *(("EX", ttl) if ttl else ()))
        for _ in range(CREATE_ATTEMPTS):
            id = self.new_id()
            if self.layout == "hash":
                created = yield _Eval(HASH_CREATE, (self.key(id),), args)
            else:
                created = yield _Command(("SET", self.key(id), *args))
            if created:  # else the id was taken: 128 random bits make this all but impossible
                return id
        raise SessionStoreError(f"no free session id after {CREATE_ATTEMPTS} tries under {self.prefix!r}")

    def _read(self, id: str, touch: datetime | None) -> _Steps[Record | None]:
        key = self.key(id)
        ttl = self.seconds_until(touch)
        if self.layout == "hash":
            reply = yield (_Eval(HASH_READ_TOUCH, (key,), (ttl,)) if ttl else _Command(("HGETALL", key)))
            if not reply:
                return None
            data = self._decode_value(id, reply)
            return None if data is None else Record(data, touch, None)
        reply = yield _Command(("GETEX", key, "EX", ttl) if ttl else ("GET", key))
        if reply is None:
            return None
        raw = _as_bytes(reply)
        data = self._decode_value(id, raw)
        # The raw bytes are the version: update() digests them, with no second read.
        return None if data is None else Record(data, touch, raw)

    def _update(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> _Steps[Record | None]:
        key = self.key(id)
        ttl = self.seconds_until(expires)
        if self.layout == "hash":
            removed = [name for name in changes.removed if name not in changes.set]
            pairs = [part for name, value in changes.set.items() for part in (name, codec.dumps(value))]
            done = yield _Eval(HASH_UPDATE, (key,), (ttl or 0, len(removed), *removed, *pairs))
            return Record(changes.apply(seen.data), expires, None) if done else None
        if not changes:
            # Only the lifetime changed: move the expiry, never rewrite the data.
            if ttl:
                done = yield _Command(("EXPIRE", key, ttl))
            else:
                done = yield _Command(("PERSIST", key))
                if not done:  # PERSIST says 0 both for "gone" and for "had no expiry"
                    done = yield _Command(("EXISTS", key))
            return Record(seen.data, expires, seen.version) if done else None
        # A record this process created has no raw version; its bytes are the encoded data.
        raw = seen.version if isinstance(seen.version, bytes) else self._encode(seen.data)
        for _ in range(redis_cas.MAX_ATTEMPTS):
            try:
                attempt = redis_cas.apply_to(changes, raw, decode=self._decode, encode=self._encode)
            except codec.CorruptRecordError as exc:
                codec.log_corrupt(self.kind, id, exc)
                return None
            reply = yield _Eval(CAS, (key,), (attempt.expected, attempt.new_raw, ttl or 0))
            if reply is None:
                return None  # deleted or expired meanwhile: never bring it back
            if isinstance(reply, int):
                return Record(attempt.data, expires, attempt.new_raw)
            raw = _as_bytes(reply)  # changed meanwhile: apply the changes to what is there now
        raise SessionStoreError(
            f"session {id[:8]}… kept changing; gave up after {redis_cas.MAX_ATTEMPTS} tries"
        )

    def _delete(self, id: str) -> _Steps[None]:
        yield _Command(("DEL", self.key(id)))

    def _take(self, id: str) -> _Steps[Record | None]:
        # One key, one command: atomic on a single server and on Cluster alike, where the old
        # and new ids live in different hash slots and RENAME could not be used.
        key = self.key(id)
        if self.layout == "hash":
            reply = yield _Eval(HASH_TAKE, (key,), ())
        else:
            reply = yield _Command(("GETDEL", key))
        if not reply:
            return None
        data = self._decode_value(id, reply)
        return None if data is None else Record(data, None, None)

    #: The operations :meth:`counted` runs, by name.
    _operations: ClassVar[dict[str, Callable[..., _Steps[Any]]]] = {
        "create": _create,
        "read": _read,
        "update": _update,
        "delete": _delete,
        "take": _take,
    }

    def _decode_value(self, id: str, reply: Any) -> dict[str, Any] | None:
        try:
            if self.layout == "hash":
                return _decode_hash(reply)
            return self._decode(_as_bytes(reply))
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None

    # -- the doors' drivers ----------------------------------------------------------------

    def _run(self, steps: _Steps[T], operation: str) -> T:
        client = self._sync_client()
        with _translated(operation):
            try:
                held = self._sync_held
                if held is not None:
                    return _drive_held(held, steps)
                op = next(steps)
                while True:
                    op = steps.send(_send(client, op))
            except StopIteration as done:
                result: T = done.value
                return result
            except redis.exceptions.ResponseError as exc:
                missing: T = self._wrong_type(operation, exc)
                return missing

    async def _arun(self, steps: _Steps[T], operation: str) -> T:
        lane = self._lanes.get(asyncio.get_running_loop()) or self._lane()
        # Written out rather than with _translated: a context manager per operation shows up
        # in the profile of a loopback round trip.
        try:
            work = _adrive(lane.client, steps) if lane.held is None else _adrive_held(lane.held, steps)
            if lane.deadlines is not None:
                return await lane.deadlines.run(work)
            if self.timeout is None:
                return await work
            return await _within(self.timeout, work)
        except redis.exceptions.ResponseError as exc:
            missing: T = self._wrong_type(operation, exc)
            return missing
        except asyncio.TimeoutError:
            cause = redis.exceptions.TimeoutError(f"no reply within {self.timeout} s")
            raise StoreUnavailableError(f"redis store unavailable during {operation}: {cause}") from cause
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"redis store unavailable during {operation}: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise SessionStoreError(f"redis store failed during {operation}: {exc}") from exc

    def _lane(self) -> _Lane:
        """This event loop's client, held connections and deadlines, made on first use."""
        loop = asyncio.get_running_loop()
        client = self._async_client()
        held = _Held.of(client) if self._given_async is None else None
        deadlines = _Deadlines(loop, self.timeout) if self.timeout is not None and _UNCANCEL else None
        lane = self._lanes[loop] = _Lane(client, held, deadlines)
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
            raise ConfigurationError(
                "this redis storage was given an async client, so it has no sync door",
                solution="call the a* methods (aget_session, acommit_session), or pass a "
                "redis.Redis / redis.cluster.RedisCluster as client=, or pass url=",
            )
        with self._lock:
            if self._sync is None:
                self._sync = self._build(asynchronous=False)
                self._sync_held = _Held.of(self._sync)
            return self._sync

    def _async_client(self) -> Any:
        if self._given_async is not None:
            return self._given_async
        if self._given_sync is not None:
            raise ConfigurationError(
                "this redis storage was given a sync client, so it has no async door",
                solution="call the sync methods (get_session, commit_session), or pass a "
                "redis.asyncio.Redis / redis.asyncio.cluster.RedisCluster as client=, or pass url=",
            )
        # An asyncio client belongs to the loop it first ran on: keep one per loop.
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = self._build(asynchronous=True)
        return client

    def _build(self, *, asynchronous: bool) -> Any:
        assert self.url is not None
        url, cluster = redis_url(self.url)
        # The async door enforces ``timeout`` once per operation (see _arun): redis-py's own
        # socket_timeout (5 s unless told otherwise) wraps every command in asyncio.wait_for
        # and every reply in a timeout scope, a task and two timers per command, which cost
        # as much as the round trip itself on loopback.
        options: dict[str, Any] = {
            "socket_connect_timeout": self.timeout,
            "socket_timeout": None if asynchronous else self.timeout,
        }
        if cluster:
            factory: Any = redis.asyncio.cluster.RedisCluster if asynchronous else redis.cluster.RedisCluster
            with _translated("connect"):
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
        pool_class: Any = (
            redis.asyncio.BlockingConnectionPool if asynchronous else redis.BlockingConnectionPool
        )
        with _translated("connect"):
            pool = pool_class.from_url(
                url, max_connections=self.max_connections, timeout=self.timeout, **options
            )
            return factory.from_pool(pool)


@dataclass(slots=True)
class _Lane:
    """What the async door uses on one event loop."""

    client: Any
    held: _Held | None
    deadlines: _Deadlines | None


#: Task.uncancel() (3.11+) lets a deadline cancel an operation without swallowing the
#: caller's own cancellations; without it, asyncio.wait_for does the job.
_UNCANCEL = sys.version_info >= (3, 11)


class _Deadlines:
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
            return await _within(self.timeout, work)
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


class _Held:
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
    def of(cls, client: Any) -> _Held | None:
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


def _drive_held(held: _Held, steps: _Steps[T]) -> T:
    conn = held.take()
    busy = False
    try:
        if held.broken and conn in held.broken:
            busy = True
            conn.disconnect()
            held.broken.discard(conn)
        op = next(steps)
        while True:
            busy = True
            reply = _held_send(conn, op)
            busy = False
            op = steps.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        if busy:  # a timeout, or an error mid-command: the reply may still be on its way
            held.broken.add(conn)
        held.give(conn)


def _held_send(conn: Any, op: _Op) -> Any:
    if isinstance(op, _Command):
        return _held_call(conn, op.args)
    if isinstance(op, _Batch):  # only Redis Cluster sends batches, and it holds no connection
        return [_held_call(conn, args) for args in op.calls]
    try:
        return _held_call(conn, ("EVALSHA", op.script.sha, len(op.keys), *op.keys, *op.args))
    except redis.exceptions.NoScriptError:
        return _held_call(conn, ("EVAL", op.script.source, len(op.keys), *op.keys, *op.args))


def _pack(conn: Any, args: tuple[Any, ...]) -> Any:
    # hiredis packs in C; redis-py's asyncio connections pack in Python.
    return [_hiredis_pack(args)] if _hiredis_pack is not None else conn.pack_command(*args)


def _held_call(conn: Any, args: tuple[Any, ...]) -> Any:
    packed = _pack(conn, args)
    try:
        conn.send_packed_command(packed, check_health=False)
        return conn.read_response()
    except redis.exceptions.ConnectionError:
        # A connection that a restart closed while it sat idle: reconnect once and repeat
        # (every command here is safe to repeat). A timeout is not retried: a hung server
        # should give a quick 503, not twice the wait.
        conn.disconnect()
        conn.send_packed_command(packed, check_health=False)
        return conn.read_response()


async def _adrive_held(held: _Held, steps: _Steps[T]) -> T:
    conn = await held.atake()
    busy = False
    try:
        if held.broken and conn in held.broken:
            busy = True
            await conn.disconnect(nowait=True)
            held.broken.discard(conn)
        op = next(steps)
        while True:
            busy = True
            reply = await _aheld_send(conn, op)
            busy = False
            op = steps.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        # No await here: a second cancellation must not skip the give-back.
        if busy:  # a timeout or a cancelled request: the reply may still be on its way
            held.broken.add(conn)
        held.agive(conn)


async def _aheld_send(conn: Any, op: _Op) -> Any:
    if isinstance(op, _Command):
        return await _aheld_call(conn, op.args)
    if isinstance(op, _Batch):
        return [await _aheld_call(conn, args) for args in op.calls]
    try:
        return await _aheld_call(conn, ("EVALSHA", op.script.sha, len(op.keys), *op.keys, *op.args))
    except redis.exceptions.NoScriptError:
        return await _aheld_call(conn, ("EVAL", op.script.source, len(op.keys), *op.keys, *op.args))


async def _aheld_call(conn: Any, args: tuple[Any, ...]) -> Any:
    packed = _pack(conn, args)
    try:
        await conn.send_packed_command(packed, check_health=False)
        return await conn.read_response()
    except redis.exceptions.ConnectionError:
        await conn.disconnect()
        await conn.send_packed_command(packed, check_health=False)
        return await conn.read_response()


def _send(client: Any, op: _Op) -> Any:
    if isinstance(op, _Command):
        return client.execute_command(*op.args)
    if isinstance(op, _Batch):
        # On a cluster, redis-py groups the commands by node: one round trip per node.
        pipe = client.pipeline(transaction=False)
        for args in op.calls:
            pipe.execute_command(*args)
        return pipe.execute()
    try:
        return client.execute_command("EVALSHA", op.script.sha, len(op.keys), *op.keys, *op.args)
    except redis.exceptions.NoScriptError:
        return client.execute_command("EVAL", op.script.source, len(op.keys), *op.keys, *op.args)


async def _adrive(client: Any, steps: _Steps[T]) -> T:
    try:
        op = next(steps)
        while True:
            op = steps.send(await _asend(client, op))
    except StopIteration as done:
        result: T = done.value
        return result


if sys.version_info >= (3, 11):

    async def _within(seconds: float, work: Awaitable[T]) -> T:
        """``work``, cancelled after ``seconds``: one timer, no extra task."""
        async with asyncio.timeout(seconds):
            return await work

else:  # pragma: no cover - Python 3.10

    async def _within(seconds: float, work: Awaitable[T]) -> T:
        return await asyncio.wait_for(work, seconds)


async def _asend(client: Any, op: _Op) -> Any:
    if isinstance(op, _Command):
        return await client.execute_command(*op.args)
    if isinstance(op, _Batch):
        pipe = client.pipeline(transaction=False)
        for args in op.calls:
            pipe.execute_command(*args)  # queues: a pipeline's commands are sent by execute()
        return await pipe.execute()
    try:
        return await client.execute_command("EVALSHA", op.script.sha, len(op.keys), *op.keys, *op.args)
    except redis.exceptions.NoScriptError:
        return await client.execute_command("EVAL", op.script.source, len(op.keys), *op.keys, *op.args)


def _decode_hash(reply: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field, value in _pairs(reply):
        try:
            name = _text(field)
        except UnicodeDecodeError:
            raise codec.CorruptRecordError("a hash field name is not UTF-8") from None
        raw = _as_bytes(value)
        if name == HASH_MARKER and raw == b"":
            continue
        try:
            data[name] = codec.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise codec.CorruptRecordError(f"hash field {name!r} is not JSON: {exc}") from None
    return data


def _milliseconds_until(expires: datetime | None, now: datetime) -> int | None:
    """Whole milliseconds from ``now`` to ``expires``, rounded up and at least 1; None: never."""
    if expires is None:
        return None
    return max(1, math.ceil((expires - now).total_seconds() * 1000))


def _glob_escape(text: str) -> str:
    """Escape Redis glob characters so a prefix matches only itself."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


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


def create_redis_session_storage(
    *,
    cookie: CookieLike = None,
    url: str | None = None,
    client: Any = None,
    ttl: TtlOption = UNSET,
    prefix: str = "session:",
    format: Format = "remix",
    layout: Layout = "string",
    timeout: float | None = 5.0,
    max_connections: int = 100,
    rolling: bool = True,
    save_uninitialized: bool = False,
    absolute_timeout: float | None = None,
    storage_key_secret: str | bytes | None = None,
    clock: Clock = utcnow,
    codec: CodecLike = None,
) -> SessionStorage:
    """Sessions in Redis (or Redis Cluster), wire-compatible with Remix's Redis storages.

    ``ttl`` (seconds) is how long Redis keeps the record, refreshed on every use, whatever the
    cookie's lifetime (as Remix's ``ttl``). Not given, records live as long as the cookie, or
    7 days for a cookie without ``max_age``/``expires``; None: no expiry of its own.
    ``format="remix-v3"`` needs a
    cookie made with ``create_cookie(..., format="remix-v3")`` (cookie options as a dict get it
    automatically). See :class:`RedisStore` for ``url``/``client``, ``timeout`` and
    ``max_connections``. ``absolute_timeout`` and ``storage_key_secret`` are as in every
    store-backed storage (docs/security.md).

    Example::

        >>> from websession import create_cookie
        >>> storage = create_redis_session_storage(
        ...     cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
        ...     url="redis://localhost:6379/0", prefix="doctest:session:")
        >>> session = storage.get_session(None)
        >>> session["user_id"] = 42
        >>> header = storage.commit_session(session)
        >>> storage.get_session(header.split(";")[0])["user_id"]
        42
        >>> storage.destroy_session(session).split(";")[0]
        '__session='
        >>> storage.close()
    """
    default_ttl, explicit_ttl = given_ttl(ttl, 604800)
    store = RedisStore(
        url=url,
        client=client,
        prefix=prefix,
        default_ttl=default_ttl,
        format=format,
        layout=layout,
        timeout=timeout,
        max_connections=max_connections,
        clock=clock,
        storage_key_secret=storage_key_secret,
    )
    store.explicit_ttl = explicit_ttl
    return SessionStorage(
        cookie=_cookie_for(cookie, format),
        store=store,
        rolling=rolling,
        save_uninitialized=save_uninitialized,
        absolute_timeout=absolute_timeout,
        codec=codec,
    )


def _cookie_for(cookie: CookieLike, format: Format) -> Cookie:
    """The storage's cookie: options given as a dict get the store's format."""
    made = cookie if isinstance(cookie, Cookie) else as_cookie({"format": format, **(cookie or {})})
    if made.format != format:
        raise ConfigurationError(
            f"a {format!r} redis storage needs a {format!r} cookie, not a {made.format!r} one",
            solution=f"create the cookie with create_cookie(..., format={format!r})",
        )
    return made


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``redis://[:password@]host:6379/0?prefix=app:&ttl=3600&format=remix&layout=string``;
    also ``rediss://`` (TLS), ``redis+cluster://`` and ``rediss+cluster://``."""
    explicit_cookie = "cookie" in options
    cookie = cookie_from_options(options)
    shared = storage_options(options)
    prefix = options.pop("prefix", "session:")
    ttl = options.pop("ttl", None)
    format = options.pop("format", "remix")
    layout = options.pop("layout", "string")
    timeout = options.pop("timeout", 5.0)
    max_connections = int(options.pop("max_connections", 100))
    reject_unknown(url.scheme, options)
    if not explicit_cookie and format in get_args(Format) and cookie.format != format:
        cookie = Cookie(cookie.name, cookie.secrets, cookie.options, format=format)
    return create_redis_session_storage(
        cookie=cookie,
        url=urlunsplit((url.scheme, url.netloc, url.path, "", "")),
        ttl=url_ttl(ttl),
        prefix=prefix,
        format=format,
        layout=layout,
        timeout=None if timeout in (None, "", "none") else float(timeout),
        max_connections=max_connections,
        **shared,
    )


__all__ = ["RedisStore", "create_redis_session_storage", "open_url"]
