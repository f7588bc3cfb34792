"""The PostgreSQL store: psycopg 3 with connection pools, sync and async.

One table (``websession_sessions`` by default) holds ``id`` (text, primary key), ``data``
(``jsonb``) and ``expires`` (``timestamptz``, indexed). The table is created by
:meth:`PostgresStore.setup` / :meth:`PostgresStore.asetup`, or on first use.

A change set is applied by one statement, so concurrent requests never undo each other and a
destroyed or expired session is never brought back::

    UPDATE t SET data = (data - $removed::text[]) || $set::jsonb, expires = $expires
    WHERE id = $id AND (expires IS NULL OR expires > $now) RETURNING data

The keys a request did not touch are never sent, decoded or re-encoded by Python.

Users and their devices (websession.users) live in two more tables, created by the same setup:
``<table>_users`` (``user_id``, ``key``: the session's storage key, ``entry``: JSON text,
``seq``: the order of sign-ins) and ``<table>_user_generations`` (``user_id``, ``generation``).
Each operation is one statement, a single round trip, that changes the session rows, the index
rows and the generation together; ``revoke_user`` is two statements sent together in pipeline
mode, one round trip and one transaction (see ``_Queries``). A sign-in costs two round trips
(take the anonymous session, create the bound one); a signed-in request costs what it did.

What JSONB does to JSON (measured on PostgreSQL 15, and covered by tests):

- Integers of any size and floats keep their exact value and type (``2**63-1``, ``2**64+1``,
  ``0.1 + 0.2``, ``1.0``, ``1e300``, ``5e-324``); ``[]`` and ``{}`` survive.
- ``-0.0`` comes back as ``0.0``: PostgreSQL's ``numeric`` has no negative zero.
- Object keys come back in JSONB's order (shorter keys first), not insertion order.
- The character U+0000 cannot be stored in ``jsonb``; a commit carrying it raises
  :class:`~websession.errors.SessionStoreError` naming the key, and nothing is written.

Example (needs a server, so not run as a doctest)::

    from websession import create_cookie, create_postgres_session_storage

    storage = create_postgres_session_storage(
        cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
        dsn="postgresql://app@localhost/app",
    )
    storage.store.setup()          # optional: the table is also created on first use
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from .. import codec
from ..changes import Changes
from ..codec import CodecLike
from ..cookie import CookieLike, as_cookie
from ..errors import ConfigurationError, SessionStoreError, StoreUnavailableError
from ..storage import SessionStorage
from ..urls import cookie_from_options, reject_unknown, storage_options
from ..users import Device, Entry, Taken
from ._entries import entry_text, parse_entry
from .base import Clock, Record, Store, utcnow

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: PostgreSQL cuts longer identifiers silently (NAMEDATALEN - 1).
_MAX_IDENTIFIER = 63
_PURGE_BATCH = 1000
_SCAN_PAGE = 500
_WRITE_BATCH = 1000

#: Pool settings used unless ``pool_options`` says otherwise. One idle connection per door is
#: enough for a small app and keeps many short-lived storages (tests, CLI) cheap.
DEFAULT_POOL_OPTIONS: dict[str, Any] = {"min_size": 1, "max_size": 10, "timeout": 5.0}


def _table_identifier(table: str) -> sql.Identifier:
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise ConfigurationError(
            f"table name {table!r} is not a plain SQL identifier",
            solution="use letters, digits and underscores, optionally as schema.table",
        )
    return sql.Identifier(*parts)


def sibling_table(table: str, suffix: str) -> str:
    """The name of a table kept beside ``table`` (in its schema): ``table`` + ``suffix``, cut
    to PostgreSQL's 63 characters with a digest of the name, so that it can never be cut back
    to ``table`` itself or to another store's table.

    Example::

        >>> sibling_table("app.sessions", "_users")
        'app.sessions_users'
        >>> name = sibling_table("s" * 60, "_users"); len(name), name.endswith("_users")
        (63, True)
    """
    schema, _, name = table.rpartition(".")
    derived = name + suffix
    if len(derived) > _MAX_IDENTIFIER:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        derived = f"{name[: _MAX_IDENTIFIER - len(suffix) - 9]}_{digest}{suffix}"
    return f"{schema}.{derived}" if schema else derived


def jsonb_text(value: Any) -> str:
    """JSON text for ``value`` that JSONB gives back with the same Python types.

    JSONB keeps numbers as ``numeric`` and prints them without an exponent, so a float that
    Python writes as ``1e+300`` would come back as a 301-digit integer. Such floats are written
    in positional form with a decimal point instead; everything else is :func:`codec.dumps`.

    Example::

        >>> jsonb_text({"a": 1e22, "b": [1.5e-7, 2]})
        '{"a":10000000000000000000000.0,"b":[0.00000015,2]}'
    """
    if not _has_exponent_float(value):
        return codec.dumps(value)
    return _positional_dumps(value)


def _has_exponent_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if "e" in repr(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _positional_dumps(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
        if "e" not in text:
            return text
        text = format(Decimal(text), "f")
        return text if "." in text else text + ".0"
    if isinstance(value, dict):
        return "{" + ",".join(f"{codec.dumps(k)}:{_positional_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_positional_dumps(v) for v in value) + "]"
    return codec.dumps(value)


def _refuse_nul(data: Mapping[str, Any]) -> None:
    """JSONB cannot hold U+0000; say which key carries it before anything is written."""
    for key, value in data.items():
        stack: list[Any] = [key, value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if "\x00" in item:
                    raise SessionStoreError(
                        f"session value for {key!r} contains the character U+0000, "
                        "which PostgreSQL's jsonb cannot store",
                        solution="remove NUL characters before putting text in the session",
                    )
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, (list, tuple)):
                stack.extend(item)


def _touch_threshold(touch: datetime, now: datetime, interval: float) -> float:
    """Seconds an expiry must move before a rolling read rewrites it (see ``touch_due``)."""
    return min(interval, (touch - now).total_seconds() / 10)


class PostgresStore(Store):
    """Records in a PostgreSQL table, through psycopg 3 connection pools.

    Give ``dsn=`` and the store opens a ``ConnectionPool`` for the sync door and an
    ``AsyncConnectionPool`` for the async door, each on first use. Or give ``pool=`` and/or
    ``async_pool=`` (pools you own and close); a door without a pool then raises
    :class:`~websession.errors.ConfigurationError` saying what to pass.

    Example (needs a server)::

        store = PostgresStore(dsn="postgresql://app@localhost/app", table="sessions")
        store.setup()
        print(store.purge_expired())
    """

    kind = "postgres"
    atomic_take = True
    atomic_changes = True
    native_ttl = False
    cheap_count = True
    user_index = True

    def __init__(
        self,
        *,
        dsn: str | None = None,
        pool: ConnectionPool[Any] | None = None,
        async_pool: AsyncConnectionPool[Any] | None = None,
        table: str = "websession_sessions",
        pool_options: Mapping[str, Any] | None = None,
        create_table: bool = True,
        default_ttl: float | None = None,
        touch_interval: float = 60.0,
        clock: Clock = utcnow,
        storage_key_secret: str | bytes | None = None,
    ) -> None:
        super().__init__(default_ttl=default_ttl, clock=clock, storage_key_secret=storage_key_secret)
        if dsn is None and pool is None and async_pool is None:
            raise ConfigurationError(
                "the PostgreSQL store needs a connection",
                solution="pass dsn='postgresql://...', or pool= and/or async_pool= (psycopg_pool pools)",
            )
        self.dsn = dsn
        self.table = table
        #: The user index (websession.users): one row per signed-in session, and one
        #: generation counter per user.
        self.users_table = sibling_table(table, "_users")
        self.generations_table = sibling_table(table, "_user_generations")
        self.touch_interval = touch_interval
        self.create_table = create_table
        self.pool_options = {**DEFAULT_POOL_OPTIONS, **(pool_options or {})}
        self._pool = pool
        self._async_pool = async_pool
        self._own_pool = False
        self._own_async_pool = False
        self._lock = threading.Lock()
        self._ready = not create_table
        self._queries = _Queries(table)

    def __repr__(self) -> str:
        return f"PostgresStore(table={self.table!r})"

    # -- setup -----------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the table, its expiry index and the user index tables if they do not exist
        (idempotent: an existing deployment gets the tables it lacks)."""
        with self._connection(setup=False) as conn, conn.transaction():
            for statement in self._queries.setup:
                conn.execute(statement)
        self._ready = True

    async def asetup(self) -> None:
        """Async twin of :meth:`setup`."""
        async with self._aconnection(setup=False) as conn, conn.transaction():
            for statement in self._queries.setup:
                await conn.execute(statement)
        self._ready = True

    # -- the sync door ---------------------------------------------------------------------

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        _refuse_nul(data)
        text = jsonb_text(data)
        with self._connection() as conn:
            while True:
                id = self.new_id()
                try:
                    conn.execute(self._queries.insert, (self.storage_key(id), text, expires))
                    return id
                except psycopg.errors.UniqueViolation:  # pragma: no cover - 128 random bits
                    continue

    def read(self, id: str, touch: datetime | None) -> Record | None:
        query, params = self._read_query(id, touch)
        with self._connection() as conn:
            row = conn.execute(query, params).fetchone()
        return self._record(id, row)

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        _refuse_nul(changes.set)
        params = self._update_params(id, changes, expires)
        with self._connection() as conn:
            row = conn.execute(self._queries.update, params).fetchone()
        return None if row is None else self._record(id, (row[0], expires))

    def delete(self, id: str) -> None:
        with self._connection() as conn:
            conn.execute(self._queries.delete, (self.storage_key(id),))

    def take(self, id: str) -> Record | None:
        with self._connection() as conn:
            row = conn.execute(self._queries.take, (self.storage_key(id),)).fetchone()
        return self._live(id, row)

    def create_for_user(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> str | None:
        params = self._bound_params(data, expires, user, entry, generation)
        with self._connection() as conn:
            while True:
                id = self.new_id()
                try:
                    row = conn.execute(
                        self._queries.create_for_user, {**params, "key": self.storage_key(id)}
                    ).fetchone()
                except psycopg.errors.UniqueViolation:  # pragma: no cover - 128 random bits
                    continue
                return None if row is None else id

    def take_for_user(self, id: str, user: str) -> Taken:
        key = self.storage_key(id)
        with self._connection() as conn:
            row = conn.execute(self._queries.take_for_user, {"user": user, "key": key}).fetchone()
        return self._taken(id, key, row)

    def sessions_of(self, user: str) -> list[Device]:
        now = self.clock()
        with self._connection() as conn:
            rows = conn.execute(self._queries.sessions_of, {"user": user, "now": now}).fetchall()
            devices, unreadable = self._devices(rows, now)
            if unreadable:  # rare: a second round trip only when an entry cannot be read
                conn.execute(self._queries.drop_entries, {"user": user, "keys": unreadable})
        return devices

    def revoke(self, key: str, user: str) -> bool:
        with self._connection() as conn:
            row = conn.execute(
                self._queries.revoke, {"user": user, "key": key, "now": self.clock()}
            ).fetchone()
        return bool(row and row[0])

    def revoke_user(self, user: str, keep: str | None) -> int:
        params = {"user": user, "keep": keep, "now": self.clock()}
        with self._connection() as conn:
            with _together(conn):
                conn.execute(self._queries.bump, params)
                cursor = conn.execute(self._queries.revoke_user, params)
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def generation(self, user: str, *, bump: bool = False) -> int:
        query = self._queries.bump if bump else self._queries.generation
        with self._connection() as conn:
            row = conn.execute(query, {"user": user}).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            pool, self._pool = (self._pool, None) if self._own_pool else (None, self._pool)
            self._own_pool = False
        if pool is not None:
            pool.close()

    # -- the async door --------------------------------------------------------------------

    async def acreate(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        _refuse_nul(data)
        text = jsonb_text(data)
        async with self._aconnection() as conn:
            while True:
                id = self.new_id()
                try:
                    await conn.execute(self._queries.insert, (self.storage_key(id), text, expires))
                    return id
                except psycopg.errors.UniqueViolation:  # pragma: no cover - 128 random bits
                    continue

    async def aread(self, id: str, touch: datetime | None) -> Record | None:
        query, params = self._read_query(id, touch)
        async with self._aconnection() as conn:
            cursor = await conn.execute(query, params)
            row = await cursor.fetchone()
        return self._record(id, row)

    async def aupdate(
        self, id: str, changes: Changes, expires: datetime | None, seen: Record
    ) -> Record | None:
        _refuse_nul(changes.set)
        params = self._update_params(id, changes, expires)
        async with self._aconnection() as conn:
            cursor = await conn.execute(self._queries.update, params)
            row = await cursor.fetchone()
        return None if row is None else self._record(id, (row[0], expires))

    async def adelete(self, id: str) -> None:
        async with self._aconnection() as conn:
            await conn.execute(self._queries.delete, (self.storage_key(id),))

    async def atake(self, id: str) -> Record | None:
        async with self._aconnection() as conn:
            cursor = await conn.execute(self._queries.take, (self.storage_key(id),))
            row = await cursor.fetchone()
        return self._live(id, row)

    async def acreate_for_user(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> str | None:
        params = self._bound_params(data, expires, user, entry, generation)
        async with self._aconnection() as conn:
            while True:
                id = self.new_id()
                try:
                    cursor = await conn.execute(
                        self._queries.create_for_user, {**params, "key": self.storage_key(id)}
                    )
                except psycopg.errors.UniqueViolation:  # pragma: no cover - 128 random bits
                    continue
                return None if await cursor.fetchone() is None else id

    async def atake_for_user(self, id: str, user: str) -> Taken:
        key = self.storage_key(id)
        async with self._aconnection() as conn:
            cursor = await conn.execute(self._queries.take_for_user, {"user": user, "key": key})
            row = await cursor.fetchone()
        return self._taken(id, key, row)

    async def asessions_of(self, user: str) -> list[Device]:
        now = self.clock()
        async with self._aconnection() as conn:
            cursor = await conn.execute(self._queries.sessions_of, {"user": user, "now": now})
            devices, unreadable = self._devices(await cursor.fetchall(), now)
            if unreadable:
                await conn.execute(self._queries.drop_entries, {"user": user, "keys": unreadable})
        return devices

    async def arevoke(self, key: str, user: str) -> bool:
        async with self._aconnection() as conn:
            cursor = await conn.execute(self._queries.revoke, {"user": user, "key": key, "now": self.clock()})
            row = await cursor.fetchone()
        return bool(row and row[0])

    async def arevoke_user(self, user: str, keep: str | None) -> int:
        params = {"user": user, "keep": keep, "now": self.clock()}
        async with self._aconnection() as conn:
            async with _atogether(conn):
                await conn.execute(self._queries.bump, params)
                cursor = await conn.execute(self._queries.revoke_user, params)
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def ageneration(self, user: str, *, bump: bool = False) -> int:
        query = self._queries.bump if bump else self._queries.generation
        async with self._aconnection() as conn:
            cursor = await conn.execute(query, {"user": user})
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def aclose(self) -> None:
        pool, self._async_pool = (
            (self._async_pool, None) if self._own_async_pool else (None, self._async_pool)
        )
        self._own_async_pool = False
        if pool is not None:
            await pool.close()
        self.close()

    # -- maintenance -----------------------------------------------------------------------

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Stream live records in id order, a page at a time."""
        after = ""
        while True:
            with self._connection() as conn:
                rows = conn.execute(self._queries.scan, (after, self.clock(), _SCAN_PAGE)).fetchall()
            for id, text, expires in rows:
                record = self._record(id, (text, expires))
                if record is not None:
                    yield id, record
            if len(rows) < _SCAN_PAGE:
                return
            after = rows[-1][0]

    def count(self) -> int:
        """Live rows, counted by the server in one query."""
        with self._connection() as conn:
            row = conn.execute(self._queries.count, (self.clock(),)).fetchone()
        return int(row[0]) if row else 0

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        """An upsert of one row (``replace=False`` leaves a live row alone)."""
        return self.write_many([(id, Record(dict(data), expires))], replace=replace) == 1

    def write_many(self, records: Iterable[tuple[str, Record]], *, replace: bool = True) -> int:
        """Upsert rows ``_WRITE_BATCH`` at a time, one transaction and one pipelined
        ``executemany`` per batch: ``INSERT ... ON CONFLICT (id) DO UPDATE``, which with
        ``replace=False`` only takes over rows that have expired."""
        written = 0
        pending = iter(records)
        while batch := list(islice(pending, _WRITE_BATCH)):
            now = self.clock()
            rows: list[tuple[Any, ...]] = []
            for id, record in batch:
                if self.is_expired(record.expires):
                    continue
                _refuse_nul(record.data)
                row: tuple[Any, ...] = (self.storage_key(id), jsonb_text(record.data), record.expires)
                rows.append(row if replace else (*row, now))
            if not rows:
                continue
            query = self._queries.upsert if replace else self._queries.insert_or_revive
            with self._connection() as conn, conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(query, rows)
                # An upsert whose WHERE fails changes no row, so rowcount counts the rows written.
                written += cursor.rowcount
        return written

    def purge_expired(self) -> int:
        """Delete expired rows in batches of 1000 (one short transaction each), then the user
        index entries of sessions that are gone or expired; return how many rows were purged."""
        total = 0
        now = self.clock()
        while True:
            with self._connection() as conn:
                deleted = conn.execute(self._queries.purge, (now, _PURGE_BATCH)).rowcount
            total += deleted
            if deleted < _PURGE_BATCH:
                break
        self._purge_index(now)
        return total

    def _purge_index(self, now: datetime) -> None:
        """Walk the user index in key order, a page of 1000 entries per statement, deleting the
        entries whose session is gone or expired: each entry is looked at once."""
        after = ("", "")  # no user id is empty
        while True:
            params = {"user": after[0], "key": after[1], "now": now, "limit": _PURGE_BATCH}
            with self._connection() as conn:
                row = conn.execute(self._queries.purge_index, params).fetchone()
            if row is None or row[2] < _PURGE_BATCH:
                return
            after = (row[0], row[1])

    # -- shared by both doors --------------------------------------------------------------

    def _read_query(self, id: str, touch: datetime | None) -> tuple[sql.Composed, dict[str, Any]]:
        now = self.clock()
        key = self.storage_key(id)
        if touch is None:
            return self._queries.read, {"id": key, "now": now}
        threshold = _touch_threshold(touch, now, self.touch_interval)
        return self._queries.read_touch, {"id": key, "now": now, "touch": touch, "threshold": threshold}

    def _update_params(self, id: str, changes: Changes, expires: datetime | None) -> dict[str, Any]:
        return {
            "id": self.storage_key(id),
            "now": self.clock(),
            "expires": expires,
            "removed": sorted(changes.removed),
            "set": jsonb_text(dict(changes.set)),
        }

    def _bound_params(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> dict[str, Any]:
        _refuse_nul(data)
        return {
            "user": user,
            "data": jsonb_text(data),
            "expires": expires,
            "entry": entry_text(entry),
            "generation": generation,
        }

    def _taken(self, id: str, key: str, row: tuple[Any, ...] | None) -> Taken:
        assert row is not None  # the statement always returns one row
        text, generation, data, expires = row
        entry = None if text is None else parse_entry(self.kind, key, text)
        if entry is None or data is None or self.is_expired(expires):
            # No entry (or one that cannot be read, which is dropped): revoked, whatever is
            # left of it; nothing is left now.
            return Taken(None, entry, int(generation))
        return Taken(self._record(id, (data, expires)), entry, int(generation))

    def _devices(self, rows: list[tuple[Any, ...]], now: datetime) -> tuple[list[Device], list[str]]:
        """The devices of the live rows a listing returned, oldest sign-in first (then in
        sign-in order), and the keys whose entries cannot be read."""
        devices: list[tuple[datetime, int, Device]] = []
        unreadable: list[str] = []
        for seq, key, text, expires in rows:
            entry = parse_entry(self.kind, key, text)
            device = None if entry is None else entry.device(key, expires, now)
            if device is None:
                unreadable.append(key)
            else:
                devices.append((device.created, seq, device))
        return [device for _, _, device in sorted(devices, key=lambda item: item[:2])], unreadable

    def _live(self, id: str, row: tuple[Any, ...] | None) -> Record | None:
        """A taken row, unless it had expired (it is deleted either way: one statement)."""
        if row is None or self.is_expired(row[1]):
            return None
        return self._record(id, row)

    def _record(self, id: str, row: tuple[Any, ...] | None) -> Record | None:
        if row is None:
            return None
        text, expires = row
        try:
            data = codec.decode_record(text)
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None
        return Record(data, expires)

    # -- connections -----------------------------------------------------------------------

    def _sync_pool(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._pool is None:
                if self.dsn is None:
                    raise ConfigurationError(
                        "this PostgreSQL store was given an async pool only, so it has no sync door",
                        solution="pass pool=psycopg_pool.ConnectionPool(...) too, or dsn= instead",
                    )
                pool: ConnectionPool[Any] = ConnectionPool(
                    self.dsn, open=False, kwargs={"autocommit": True}, **self.pool_options
                )
                pool.open(wait=False)
                self._pool, self._own_pool = pool, True
            return self._pool

    async def _async_pool_open(self) -> AsyncConnectionPool[Any]:
        pool = self._async_pool
        if pool is None:
            if self.dsn is None:
                raise ConfigurationError(
                    "this PostgreSQL store was given a sync pool only, so it has no async door",
                    solution="pass async_pool=psycopg_pool.AsyncConnectionPool(...) too, or dsn= instead",
                )
            pool = AsyncConnectionPool(self.dsn, open=False, kwargs={"autocommit": True}, **self.pool_options)
            self._async_pool, self._own_async_pool = pool, True
        if self._own_async_pool:
            # Idempotent; a request that arrives while the first one opens the pool waits here.
            await pool.open(wait=False)
        return pool

    @contextmanager
    def _connection(self, *, setup: bool = True) -> Iterator[psycopg.Connection[Any]]:
        if setup and not self._ready:
            self.setup()
        with self._errors(), self._sync_pool().connection() as conn:
            yield conn

    @asynccontextmanager
    async def _aconnection(self, *, setup: bool = True) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if setup and not self._ready:
            await self.asetup()
        with self._errors():
            pool = await self._async_pool_open()
            async with pool.connection() as conn:
                yield conn

    def _errors(self) -> _PostgresErrors:
        return _PostgresErrors(self.table)


def _together(conn: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
    """Send the statements of the block together: in pipeline mode they go in one round trip
    and run as one implicit transaction (one Sync); without pipelining (libpq before 14), in
    an explicit transaction."""
    return conn.pipeline() if psycopg.Pipeline.is_supported() else conn.transaction()


def _atogether(conn: psycopg.AsyncConnection[Any]) -> AbstractAsyncContextManager[Any]:
    """Async twin of :func:`_together`."""
    return conn.pipeline() if psycopg.AsyncPipeline.is_supported() else conn.transaction()


class _PostgresErrors:
    """Turn psycopg's errors into websession's: an unreachable server is unavailable."""

    def __init__(self, table: str) -> None:
        self.table = table

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if isinstance(error, (psycopg.OperationalError, PoolTimeout)):
            raise StoreUnavailableError(f"PostgreSQL (table {self.table!r}): {error}") from error
        if isinstance(error, psycopg.Error):
            raise SessionStoreError(f"PostgreSQL (table {self.table!r}): {error}") from error


class _Queries:
    """The statements, composed once per store with its table name."""

    def __init__(self, name: str) -> None:
        table = _table_identifier(name)
        index = sql.Identifier(name.split(".")[-1] + "_expires_idx")
        lock_key = f"websession:{name}"
        self.setup = [
            # Two processes creating the table at once would collide in pg_type; serialise them.
            sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(sql.Literal(lock_key)),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} "
                "(id text PRIMARY KEY, data jsonb NOT NULL, expires timestamptz)"
            ).format(table),
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (expires) WHERE expires IS NOT NULL").format(
                index, table
            ),
        ]
        self.insert = sql.SQL("INSERT INTO {} (id, data, expires) VALUES (%s, %s::jsonb, %s)").format(table)
        self.read = sql.SQL(
            "SELECT data::text, expires FROM {} WHERE id = %(id)s AND (expires IS NULL OR expires > %(now)s)"
        ).format(table)
        # Rolling: one round trip that reads the row and moves its expiry only when it moves by
        # more than the threshold, so a busy session is not rewritten on every request.
        self.read_touch = sql.SQL(
            "WITH cur AS (SELECT id, data, expires FROM {t} "
            "WHERE id = %(id)s AND (expires IS NULL OR expires > %(now)s)), "
            "moved AS (UPDATE {t} SET expires = %(touch)s FROM cur WHERE {t}.id = cur.id AND "
            "(cur.expires IS NULL OR abs(extract(epoch FROM %(touch)s - cur.expires)) > %(threshold)s) "
            "RETURNING {t}.expires) "
            "SELECT cur.data::text, coalesce((SELECT expires FROM moved), cur.expires) FROM cur"
        ).format(t=table)
        self.update = sql.SQL(
            "UPDATE {} SET data = (data - %(removed)s::text[]) || %(set)s::jsonb, expires = %(expires)s "
            "WHERE id = %(id)s AND (expires IS NULL OR expires > %(now)s) RETURNING data::text"
        ).format(table)
        self.delete = sql.SQL("DELETE FROM {} WHERE id = %s").format(table)
        self.take = sql.SQL("DELETE FROM {} WHERE id = %s RETURNING data::text, expires").format(table)
        self.scan = sql.SQL(
            "SELECT id, data::text, expires FROM {} WHERE id > %s AND (expires IS NULL OR expires > %s) "
            "ORDER BY id LIMIT %s"
        ).format(table)
        self.count = sql.SQL("SELECT count(*) FROM {} WHERE expires IS NULL OR expires > %s").format(table)
        upsert = (
            "INSERT INTO {t} (id, data, expires) VALUES (%s, %s::jsonb, %s) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires = excluded.expires"
        )
        self.upsert = sql.SQL(upsert).format(t=table)
        # Only a row that has expired is taken over; a live one is left as it is.
        self.insert_or_revive = sql.SQL(
            upsert + " WHERE {t}.expires IS NOT NULL AND {t}.expires <= %s"
        ).format(t=table)
        self.purge = sql.SQL(
            "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE expires <= %s "
            "LIMIT %s FOR UPDATE SKIP LOCKED)"
        ).format(t=table)
        users = _table_identifier(sibling_table(name, "_users"))
        generations = _table_identifier(sibling_table(name, "_user_generations"))
        self.setup += [
            # seq: the order of sign-ins, which breaks ties between equal sign-in times.
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (user_id text NOT NULL, key text NOT NULL, "
                "entry text NOT NULL, seq bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (user_id, key))"
            ).format(users),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (user_id text PRIMARY KEY, generation bigint NOT NULL)"
            ).format(generations),
        ]
        self._user_index(table, users, generations)

    def _user_index(self, t: sql.Identifier, u: sql.Identifier, g: sql.Identifier) -> None:
        """The user index statements (websession.users): one round trip each.

        Why no revocation is outrun, in READ COMMITTED (each statement sees the rows committed
        when it starts):

        - ``create_for_user`` with a generation (a bound session moving to a new id) locks the
          user's generation row (``ON CONFLICT DO UPDATE``, which waits for a concurrent
          revocation and then reads its committed value) and writes nothing if it moved.
        - ``revoke_user`` first bumps the generation (taking that lock), and only then, in a
          second statement with a snapshot of its own, deletes index rows and sessions: a
          move that held the lock first has committed by then, so its new rows are seen and
          deleted. One statement could not do this: its snapshot would predate the lock. The
          two are pipelined: one round trip, one implicit transaction.
        - ``revoke`` and ``take_for_user`` both delete one existing key, so the row locks on
          it order them; the generation bump stops the move that follows a take.
        - Row locks are taken generation first, then index entry, then session row (the CTEs
          are chained to force that order), so these statements cannot deadlock one another.
        """
        formats = {"t": t, "u": u, "g": g}
        self.create_for_user = sql.SQL(
            "WITH gen AS (INSERT INTO {g} (user_id, generation) "
            "SELECT %(user)s::text, 0 WHERE %(generation)s::bigint IS NOT NULL "
            "ON CONFLICT (user_id) DO UPDATE SET generation = {g}.generation RETURNING generation), "
            "created AS (INSERT INTO {t} (id, data, expires) "
            "SELECT %(key)s::text, %(data)s::jsonb, %(expires)s::timestamptz "
            "WHERE %(generation)s::bigint IS NULL OR %(generation)s::bigint = (SELECT generation FROM gen) "
            "RETURNING id) "
            "INSERT INTO {u} (user_id, key, entry) SELECT %(user)s::text, id, %(entry)s::text FROM created "
            "RETURNING key"
        ).format(**formats)
        # Always one row: the entry (or NULL), the generation, the taken record (or NULLs).
        self.take_for_user = sql.SQL(
            "WITH entry AS (DELETE FROM {u} WHERE user_id = %(user)s AND key = %(key)s RETURNING entry), "
            "taken AS (DELETE FROM {t} WHERE id = %(key)s AND (SELECT count(*) FROM entry) >= 0 "
            "RETURNING data::text AS data, expires) "
            "SELECT (SELECT entry FROM entry), "
            "coalesce((SELECT generation FROM {g} WHERE user_id = %(user)s), 0), "
            "(SELECT data FROM taken), (SELECT expires FROM taken)"
        ).format(**formats)
        # The live entries, and (the lazy half of index expiry) the others deleted on the way.
        self.sessions_of = sql.SQL(
            "WITH listed AS (SELECT e.seq, e.key, e.entry, s.expires, "
            "s.id IS NOT NULL AND (s.expires IS NULL OR s.expires > %(now)s) AS live "
            "FROM {u} e LEFT JOIN {t} s ON s.id = e.key WHERE e.user_id = %(user)s), "
            "pruned AS (DELETE FROM {u} WHERE user_id = %(user)s "
            "AND key IN (SELECT key FROM listed WHERE NOT live)) "
            "SELECT seq, key, entry, expires FROM listed WHERE live"
        ).format(**formats)
        # Unreadable entries go with their sessions: a bound session without an entry counts
        # as revoked, and none may live outside the index, out of revoke_user's reach.
        self.drop_entries = sql.SQL(
            "WITH entries AS (DELETE FROM {u} WHERE user_id = %(user)s AND key = ANY(%(keys)s) "
            "RETURNING key) DELETE FROM {t} WHERE id IN (SELECT key FROM entries)"
        ).format(**formats)
        self.revoke = sql.SQL(
            "WITH gen AS (INSERT INTO {g} (user_id, generation) VALUES (%(user)s, 1) "
            "ON CONFLICT (user_id) DO UPDATE SET generation = {g}.generation + 1 RETURNING generation), "
            "entry AS (DELETE FROM {u} WHERE user_id = %(user)s AND key = %(key)s "
            "AND (SELECT generation FROM gen) > 0 RETURNING key), "
            "gone AS (DELETE FROM {t} WHERE id = %(key)s AND (SELECT count(*) FROM entry) >= 0 "
            "RETURNING expires) "
            "SELECT count(*) FROM gone WHERE expires IS NULL OR expires > %(now)s"
        ).format(**formats)
        self.bump = sql.SQL(
            "INSERT INTO {g} (user_id, generation) VALUES (%(user)s, 1) "
            "ON CONFLICT (user_id) DO UPDATE SET generation = {g}.generation + 1 RETURNING generation"
        ).format(**formats)
        self.generation = sql.SQL(
            "SELECT coalesce((SELECT generation FROM {g} WHERE user_id = %(user)s), 0)"
        ).format(**formats)
        # Sent right after `bump`, in the same pipeline: see the docstring.
        self.revoke_user = sql.SQL(
            "WITH entries AS (DELETE FROM {u} WHERE user_id = %(user)s "
            "AND key IS DISTINCT FROM %(keep)s::text RETURNING key), "
            "gone AS (DELETE FROM {t} WHERE id IN (SELECT key FROM entries) RETURNING expires) "
            "SELECT count(*) FROM gone WHERE expires IS NULL OR expires > %(now)s"
        ).format(**formats)
        # One page of the index in key order: its dead entries deleted, its last key and size
        # returned (no row: the walk is over).
        self.purge_index = sql.SQL(
            "WITH page AS (SELECT user_id, key FROM {u} "
            "WHERE (user_id, key) > (%(user)s::text, %(key)s::text) ORDER BY user_id, key LIMIT %(limit)s), "
            "dead AS (DELETE FROM {u} e USING page WHERE e.user_id = page.user_id AND e.key = page.key "
            "AND NOT EXISTS (SELECT 1 FROM {t} s WHERE s.id = e.key "
            "AND (s.expires IS NULL OR s.expires > %(now)s))) "
            "SELECT user_id, key, (SELECT count(*) FROM page) FROM page "
            "ORDER BY user_id DESC, key DESC LIMIT 1"
        ).format(**formats)


__all__ = ["DEFAULT_POOL_OPTIONS", "PostgresStore", "create_postgres_session_storage", "jsonb_text"]


def create_postgres_session_storage(
    *,
    cookie: CookieLike = None,
    dsn: str | None = None,
    pool: ConnectionPool[Any] | None = None,
    async_pool: AsyncConnectionPool[Any] | None = None,
    table: str = "websession_sessions",
    pool_options: Mapping[str, Any] | None = None,
    create_table: bool = True,
    default_ttl: float | None = None,
    touch_interval: float = 60.0,
    rolling: bool = True,
    save_uninitialized: bool = False,
    absolute_timeout: float | None = None,
    storage_key_secret: str | bytes | None = None,
    clock: Clock = utcnow,
    codec: CodecLike = None,
) -> SessionStorage:
    """Sessions in a PostgreSQL table (``jsonb`` data, indexed ``timestamptz`` expiry).

    ``dsn`` opens pools lazily, one per door; or pass ``pool=`` / ``async_pool=`` that you
    own. ``pool_options`` go to the pools the store opens (default
    ``{"min_size": 1, "max_size": 10, "timeout": 5.0}``). ``create_table=False`` skips the
    first-use ``CREATE TABLE IF NOT EXISTS`` (call ``storage.store.setup()`` in a migration).

    ``absolute_timeout`` (seconds) ends a session that long after its id was issued, however
    active; ``storage_key_secret`` keeps records under a keyed hash of the id, so a dump of the
    store holds no live ids (docs/security.md).

    Example (needs a server)::

        from websession import create_cookie, create_postgres_session_storage

        storage = create_postgres_session_storage(
            cookie=create_cookie("__session", secrets=["s3cret"], max_age=3600),
            dsn="postgresql://app@localhost/app",
        )
        session = storage.get_session(None)
        session["user"] = 42
        header = storage.commit_session(session)   # INSERT, then Set-Cookie
    """
    store = PostgresStore(
        dsn=dsn,
        pool=pool,
        async_pool=async_pool,
        table=table,
        pool_options=pool_options,
        create_table=create_table,
        default_ttl=default_ttl,
        touch_interval=touch_interval,
        clock=clock,
        storage_key_secret=storage_key_secret,
    )
    store.explicit_ttl = default_ttl is not None  # an explicit lifetime wins over the cookie's
    return SessionStorage(
        cookie=as_cookie(cookie),
        store=store,
        rolling=rolling,
        save_uninitialized=save_uninitialized,
        absolute_timeout=absolute_timeout,
        codec=codec,
    )


#: URL query parameters websession reads; every other one stays in the DSN for libpq.
_URL_OPTIONS = frozenset(
    {"secrets", "cookie", "cookie_name", "max_age", "rolling", "save_uninitialized", "ttl", "table"}
    | {"min_size", "max_size", "pool_timeout", "create_table", "touch_interval"}
)


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``postgresql://user:pass@host:5432/db?table=sessions&sslmode=require`` (or ``postgres://``).

    websession's options (``table``, ``ttl``, ``min_size``, ``max_size``, ``pool_timeout``,
    ``create_table``, ``touch_interval`` and the cookie options) are taken out; every other
    query parameter stays in the DSN for libpq (``sslmode``, ``connect_timeout``, ...).
    """
    query = parse_qsl(url.query)
    libpq = [(k, v) for k, v in query if k not in _URL_OPTIONS]
    for name, _ in libpq:
        options.pop(name, None)
    dsn = urlunsplit(("postgresql", url.netloc, url.path, urlencode(libpq), ""))
    cookie = cookie_from_options(options)
    shared = storage_options(options)
    ttl = options.pop("ttl", None)
    table = options.pop("table", "websession_sessions")
    touch_interval = float(options.pop("touch_interval", 60.0))
    create_table = str(options.pop("create_table", "true")).lower() in ("1", "true", "yes")
    pool_options: dict[str, Any] = {}
    for name, key, kind in (("min_size", "min_size", int), ("max_size", "max_size", int)):
        if name in options:
            pool_options[key] = kind(options.pop(name))
    if "pool_timeout" in options:
        pool_options["timeout"] = float(options.pop("pool_timeout"))
    reject_unknown(url.scheme, options)
    return create_postgres_session_storage(
        dsn=dsn,
        cookie=cookie,
        table=table,
        pool_options=pool_options,
        create_table=create_table,
        default_ttl=None if ttl is None else float(ttl),
        touch_interval=touch_interval,
        **shared,
    )
