"""The PostgreSQL store's records: create, read, update, delete and take a session's row.

One table (``websession_sessions`` by default) holds ``id`` (text, primary key), ``data``
(``jsonb``) and ``expires`` (``timestamptz``, indexed).

What PostgreSQL guarantees here: every operation is one statement, so one round trip, atomic
on its own. A change set is applied by one ``UPDATE`` under the row's lock, so concurrent
requests never undo each other and a destroyed or expired session is never brought back::

    UPDATE t SET data = (data - $removed::text[]) || $set::jsonb, expires = $expires
    WHERE id = $id AND (expires IS NULL OR expires > $now) RETURNING data

The keys a request did not touch are never sent, decoded or re-encoded by Python. ``take`` is
one ``DELETE ... RETURNING``: once it has the row, no update and no second take finds it. A
rolling read moves the expiry in the same statement, and only when it moves by more than
``touch_interval`` (or a tenth of the lifetime left, if less), so a busy session is not
rewritten on every request.

What it does not: delete expired rows (every statement treats them as absent until
``purge_expired``), or merge two requests' values for one key: of two change sets that set
the same key, the one applied last wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from ...changes import Changes
from ..base import Record
from .jsonb import _refuse_nul, jsonb_text
from .maintenance import Maintenance
from .users import UserIndex


def _touch_threshold(touch: datetime, now: datetime, interval: float) -> float:
    """Seconds an expiry must move before a rolling read rewrites it (see ``touch_due``)."""
    return min(interval, (touch - now).total_seconds() / 10)


class PostgresStore(UserIndex, Maintenance):
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

    def _live(self, id: str, row: tuple[Any, ...] | None) -> Record | None:
        """A taken row, unless it had expired (it is deleted either way: one statement)."""
        if row is None or self.is_expired(row[1]):
            return None
        return self._record(id, row)
