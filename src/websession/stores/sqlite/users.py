"""The SQLite store's user index (websession.users): who is signed in where, and revocation.

Two tables beside the sessions table, created with it (so a database of an older version gets
them when the store opens it): ``<table>_users`` (``user_id``, ``key``: the session's storage
key, ``entry``: JSON text) and ``<table>_user_generations`` (``user_id``, ``generation``).

What SQLite guarantees here: each operation that changes anything is one BEGIN IMMEDIATE
transaction over the session row(s), the index rows and the generation row: SQLite lets one
writer in at a time, so no interleaving of two operations exists and the order of the
statements inside does not matter. A failure rolls the whole operation back.

What it does not: expire index rows. The entries of expired or deleted sessions stay until a
listing (``sessions_of``, which reads, then prunes in a transaction of its own) or
``purge_expired`` deletes them. An entry that cannot be read is dropped with its session, as
if revoked, and a generation websession never wrote reads as -1 until the next revocation.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from ... import codec
from ...users import Device, Entry, Taken, user_digest
from .._entries import UNREADABLE_GENERATION, entry_text, fresh_generation, listed_devices, parse_entry
from ..base import Data
from .database import LIVE, Immediate, SqliteDatabase, stored_moment


class SqliteUserIndex(SqliteDatabase):
    """The user index half of :class:`~websession.stores.sqlite.SqliteStore`."""

    def create_for_user(
        self, data: Data, expires: datetime | None, user: str, entry: Entry, generation: int | None
    ) -> str | None:
        text = codec.dumps(data)
        with Immediate(self) as db:
            if generation is not None and self._generation(db, user) != generation:
                return None  # revoked since the session was taken: it must not move
            id = self._insert(db, text, expires)
            db.execute(
                f"INSERT OR REPLACE INTO {self.users_table} (user_id, key, entry) VALUES (?, ?, ?)",
                (user, self.storage_key(id), entry_text(entry)),
            )
        return id

    def take_for_user(self, id: str, user: str) -> Taken:
        key = self.storage_key(id)
        with Immediate(self) as db:
            found = db.execute(
                f"SELECT entry FROM {self.users_table} WHERE user_id = ? AND key = ?", (user, key)
            ).fetchone()
            db.execute(f"DELETE FROM {self.users_table} WHERE user_id = ? AND key = ?", (user, key))
            generation = self._generation(db, user)
            row = db.execute(
                f"SELECT data, expires FROM {self.table} WHERE id = ? AND {LIVE}",
                (key, self.clock().timestamp()),
            ).fetchone()
            db.execute(f"DELETE FROM {self.table} WHERE id = ?", (key,))
        entry = None if found is None else parse_entry(self.kind, key, found[0])
        if entry is None or row is None:
            # No entry (or one that cannot be read, which is dropped): revoked, whatever is
            # left of it; nothing is left now.
            return Taken(None, entry, generation)
        return Taken(self._row_record(id, row), entry, generation)

    def sessions_of(self, user: str) -> list[Device]:
        now = self.clock()
        with self._errors:
            rows = (
                self._db()
                .execute(
                    f"SELECT u.rowid, u.key, u.entry, s.expires, s.id IS NOT NULL AND "
                    f"(s.expires IS NULL OR s.expires > ?) FROM {self.users_table} u "
                    f"LEFT JOIN {self.table} s ON s.id = u.key WHERE u.user_id = ?",
                    (now.timestamp(), user),
                )
                .fetchall()
            )
        listed: list[tuple[int, str, Any, datetime | None]] = []
        dead: list[str] = []
        for order, key, text, expires, live in rows:
            if not live:
                dead.append(key)
                continue
            try:
                listed.append((order, key, text, stored_moment(expires)))
            except ValueError:
                continue  # a session row websession never wrote: not listed, and read as missing
        # Oldest sign-in first; sign-ins in the same instant in the order they were indexed.
        devices, unreadable = listed_devices(self.kind, listed, now)
        if dead or unreadable:
            self._prune(user, dead, unreadable, now.timestamp())
        return devices

    def revoke(self, key: str, user: str) -> bool:
        with Immediate(self) as db:
            self._bump(db, user)
            db.execute(f"DELETE FROM {self.users_table} WHERE user_id = ? AND key = ?", (user, key))
            live = db.execute(
                f"DELETE FROM {self.table} WHERE id = ? AND {LIVE}", (key, self.clock().timestamp())
            ).rowcount
            db.execute(f"DELETE FROM {self.table} WHERE id = ?", (key,))
        return live > 0

    def revoke_user(self, user: str, keep: str | None) -> int:
        doomed = f"SELECT key FROM {self.users_table} WHERE user_id = ? AND key IS NOT ?"
        with Immediate(self) as db:
            self._bump(db, user)
            live = db.execute(
                f"DELETE FROM {self.table} WHERE id IN ({doomed}) AND {LIVE}",
                (user, keep, self.clock().timestamp()),
            ).rowcount
            db.execute(f"DELETE FROM {self.table} WHERE id IN ({doomed})", (user, keep))
            db.execute(f"DELETE FROM {self.users_table} WHERE user_id = ? AND key IS NOT ?", (user, keep))
        return int(live)

    def generation(self, user: str, *, bump: bool = False) -> int:
        if bump:
            with Immediate(self) as db:
                return self._bump(db, user)
        with self._errors:
            return self._generation(self._db(), user)

    def _generation(self, db: sqlite3.Connection, user: str) -> int:
        """The user's generation; a value websession never writes (SQLite keeps text, blobs and
        fractions in an INTEGER column) is logged and read as -1, never raised."""
        row = db.execute(
            f"SELECT generation FROM {self.generations_table} WHERE user_id = ?", (user,)
        ).fetchone()
        if row is None:
            return 0
        value = row[0]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        problem = ValueError(
            f"generation is {type(value).__name__} {value!r:.20}: read as {UNREADABLE_GENERATION} "
            "until the next revocation replaces it"
        )
        codec.log_corrupt(f"{self.kind} user generation", user_digest(user), problem)
        return UNREADABLE_GENERATION

    def _bump(self, db: sqlite3.Connection, user: str) -> int:
        # A generation that cannot be read is replaced by one it cannot have been.
        db.execute(
            f"INSERT INTO {self.generations_table} (user_id, generation) VALUES (?, 1) "
            "ON CONFLICT(user_id) DO UPDATE SET generation = CASE WHEN typeof(generation) = "
            "'integer' THEN generation + 1 ELSE ? END",
            (user, fresh_generation()),
        )
        return self._generation(db, user)

    def _prune(self, user: str, dead: list[str], unreadable: list[str], now: float) -> None:
        """Drop the entries a listing found dead (unless their session is live again by now,
        which only ``websession migrate`` could do), and the unreadable ones with their
        sessions: a bound session without an entry counts as revoked (Store.take_for_user), so
        none is left alive outside the index, where ``revoke_user`` could not reach it."""
        with Immediate(self) as db:
            db.executemany(
                f"DELETE FROM {self.users_table} WHERE user_id = ? AND key = ? AND NOT EXISTS "
                f"(SELECT 1 FROM {self.table} WHERE id = ? AND {LIVE})",
                [(user, key, key, now) for key in dead],
            )
            db.executemany(
                f"DELETE FROM {self.users_table} WHERE user_id = ? AND key = ?",
                [(user, key) for key in unreadable],
            )
            db.executemany(f"DELETE FROM {self.table} WHERE id = ?", [(key,) for key in unreadable])
