"""Users and their devices (websession.users) in PostgreSQL: two tables beside the sessions.

``<table>_users`` holds one row per signed-in session (``user_id``, ``key``: the session's
storage key, ``entry``: JSON text, ``seq``: the order of sign-ins), and
``<table>_user_generations`` one counter per user (``user_id``, ``generation``). Both are made
by the store's setup.

What PostgreSQL guarantees here: each operation is one statement, a single round trip, that
changes the session rows, the index rows and the generation together, under row locks taken
in one order (generation, index entry, session), so operations never deadlock each other and
no revocation is outrun (see ``_Queries._user_index``). ``revoke_user`` is two statements sent
together in pipeline mode: one round trip and one transaction. A sign-in costs two round trips
(take the anonymous session, create the bound one); a signed-in request costs what it did.

What it does not: expire index rows. The entries of expired or deleted sessions stay until a
listing (``sessions_of``) or ``purge_expired`` deletes them; an entry that cannot be read is
dropped with its session, as if revoked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from ...users import Device, Entry, Taken
from .._entries import entry_text, listed_devices, parse_entry
from ..base import Data
from .jsonb import _refuse_nul, jsonb_text
from .pools import PooledStore, atogether, together

#: A new session's data, as the store is given it.


class UserIndex(PooledStore):
    """The user index operations of :class:`~websession.stores.postgres.PostgresStore`."""

    def create_for_user(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
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
            devices, unreadable = listed_devices(self.kind, rows, now)
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
            with together(conn):
                conn.execute(self._queries.bump, params)
                cursor = conn.execute(self._queries.revoke_user, params)
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def generation(self, user: str, *, bump: bool = False) -> int:
        query = self._queries.bump if bump else self._queries.generation
        with self._connection() as conn:
            row = conn.execute(query, {"user": user}).fetchone()
        return int(row[0]) if row else 0

    # -- the async door --------------------------------------------------------------------

    async def acreate_for_user(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
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
            devices, unreadable = listed_devices(self.kind, await cursor.fetchall(), now)
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
            async with atogether(conn):
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

    # -- shared by both doors --------------------------------------------------------------

    def _bound_params(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
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
