"""The PostgreSQL store's connections: psycopg 3 pools, one per door, the tables created on
first use, psycopg's errors turned into websession's, and statements sent together.

What PostgreSQL and psycopg guarantee here:

- The pools the store opens run in autocommit, so each statement is its own transaction: it
  commits, or fails whole, before the connection goes back to the pool.
- In pipeline mode (libpq 14 and later) statements sent together go in one round trip and
  run as one implicit transaction; :func:`together` falls back to an explicit transaction.
- ``CREATE TABLE IF NOT EXISTS`` under an advisory lock: two processes starting at once both
  find the tables made.

What they do not:

- A pool has at most ``max_size`` connections (10 by default); a request that finds none free
  within ``timeout`` (5 s) fails with :class:`~websession.errors.StoreUnavailableError`, as
  does a server that cannot be reached (``psycopg.OperationalError``). Any other database
  error is a :class:`~websession.errors.SessionStoreError`; neither is retried.
- Pools the store did not open (``pool=``, ``async_pool=``) are the caller's to close.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from ... import codec
from ...errors import ConfigurationError, SessionStoreError, StoreUnavailableError
from ..base import ErrorRules, Record, Store, StoreArguments, translate_errors

if TYPE_CHECKING:
    from typing_extensions import Unpack
from .queries import _Queries, sibling_table

#: Pool settings used unless ``pool_options`` says otherwise. One idle connection per door is
#: enough for a small app and keeps many short-lived storages (tests, CLI) cheap.
DEFAULT_POOL_OPTIONS: dict[str, Any] = {"min_size": 1, "max_size": 10, "timeout": 5.0}

#: An unreachable server, or no free connection in time, is unavailable; the rest is an error.
POSTGRES_ERRORS: ErrorRules = (
    ((psycopg.OperationalError, PoolTimeout), StoreUnavailableError),
    (psycopg.Error, SessionStoreError),
)


class PooledStore(Store):
    """What every part of :class:`~websession.stores.postgres.PostgresStore` stands on: its
    settings, its pools and connections, its tables' setup, and reading a row into a record."""

    def __init__(
        self,
        *,
        dsn: str | None = None,
        pool: ConnectionPool[Any] | None = None,
        async_pool: AsyncConnectionPool[Any] | None = None,
        table: str = "websession_sessions",
        pool_options: Mapping[str, Any] | None = None,
        create_table: bool = True,
        touch_interval: float = 60.0,
        **shared: Unpack[StoreArguments],
    ) -> None:
        super().__init__(**shared)
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
        # One for every call: the message names the table, which does not change.
        self._errors = translate_errors(POSTGRES_ERRORS, f"PostgreSQL (table {table!r})")

    def __repr__(self) -> str:
        return f"PostgresStore(table={self.table!r})"

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

    def close(self) -> None:
        """Close the pools the store opened; pools it was given are left to their owner."""
        with self._lock:
            pool = self._pool if self._own_pool else None
            if pool is not None:
                self._pool, self._own_pool = None, False
        if pool is not None:
            pool.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`, which closes the async pool too."""
        pool = self._async_pool if self._own_async_pool else None
        if pool is not None:
            self._async_pool, self._own_async_pool = None, False
            await pool.close()
        self.close()

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
        with self._errors, self._sync_pool().connection() as conn:
            yield conn

    @asynccontextmanager
    async def _aconnection(self, *, setup: bool = True) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if setup and not self._ready:
            await self.asetup()
        with self._errors:
            pool = await self._async_pool_open()
            async with pool.connection() as conn:
                yield conn


def together(conn: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
    """Send the statements of the block together: in pipeline mode they go in one round trip
    and run as one implicit transaction (one Sync); without pipelining (libpq before 14), in
    an explicit transaction."""
    return conn.pipeline() if psycopg.Pipeline.is_supported() else conn.transaction()


def atogether(conn: psycopg.AsyncConnection[Any]) -> AbstractAsyncContextManager[Any]:
    """Async twin of :func:`together`."""
    return conn.pipeline() if psycopg.AsyncPipeline.is_supported() else conn.transaction()
