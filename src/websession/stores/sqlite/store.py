"""The SQLite store's session operations: create, read (rolling), update, delete, take.

Each change is one statement or one BEGIN IMMEDIATE transaction (:class:`.database.Immediate`);
the user index is :mod:`.users`, maintenance :mod:`.maintenance`.

What SQLite guarantees here: an update and a take each read and write in one ``BEGIN
IMMEDIATE`` transaction, so concurrent changes to one session are applied one after another,
each to the record as the last one left it, and a destroyed or expired session is never
brought back; a take hands a record to one caller only. Create, delete and a plain read are
single statements.

What it does not: delete expired rows (every query treats them as absent until
``purge_expired``), or merge two requests' values for one key (of two change sets setting
the same key, the one applied last wins). A rolling read moves the expiry in a second
statement after its ``SELECT``, not in one transaction with it; that ``UPDATE`` skips a row
that expired in between, so it never revives one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ... import codec
from ...changes import Changes
from ..base import Record, touch_due
from .database import LIVE, Immediate, from_epoch, stored_moment, to_epoch
from .maintenance import SqliteMaintenance
from .users import SqliteUserIndex


class SqliteStore(SqliteUserIndex, SqliteMaintenance):
    """Records in a SQLite table. Each thread gets its own connection."""

    kind = "sqlite"
    atomic_take = True
    cheap_count = True
    user_index = True

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r}, table={self.table!r})"

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        text = codec.dumps(data)
        with self._errors:
            return self._insert(self._db(), text, expires)

    def read(self, id: str, touch: datetime | None) -> Record | None:
        now = self.clock().timestamp()
        key = self.storage_key(id)
        with self._errors:
            db = self._db()
            row = db.execute(
                f"SELECT data, expires FROM {self.table} WHERE id = ? AND {LIVE}", (key, now)
            ).fetchone()
            if row is None:
                return None
            text, expires = row
            try:
                stored_expiry = stored_moment(expires)
            except ValueError as exc:
                codec.log_corrupt(self.kind, id, exc)
                return None
            new_expiry = to_epoch(touch)
            if touch is not None and touch_due(stored_expiry, touch, self.clock(), self.touch_interval):
                # Rolling: move the expiry, but only when it moves enough to matter.
                db.execute(
                    f"UPDATE {self.table} SET expires = ? WHERE id = ? AND {LIVE}", (new_expiry, key, now)
                )
                expires = new_expiry
        data = self._decode(id, text)
        return None if data is None else Record(data, from_epoch(expires), text)

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        now = self.clock().timestamp()
        key = self.storage_key(id)
        with Immediate(self) as db:
            row = db.execute(f"SELECT data FROM {self.table} WHERE id = ? AND {LIVE}", (key, now)).fetchone()
            stored = None if row is None else self._decode(id, row[0])
            if stored is None:
                return None  # nothing was written: the COMMIT ends the transaction as a ROLLBACK would
            data = stored
            if changes:
                data = changes.apply(stored)
                text = codec.dumps(data)
                db.execute(
                    f"UPDATE {self.table} SET data = ?, expires = ? WHERE id = ?",
                    (text, to_epoch(expires), key),
                )
            else:
                text = row[0]
                db.execute(f"UPDATE {self.table} SET expires = ? WHERE id = ?", (to_epoch(expires), key))
        return Record(data, expires, text)

    def delete(self, id: str) -> None:
        with self._errors:
            self._db().execute(f"DELETE FROM {self.table} WHERE id = ?", (self.storage_key(id),))

    def take(self, id: str) -> Record | None:
        now = self.clock().timestamp()
        key = self.storage_key(id)
        # One write transaction (not DELETE ... RETURNING, which older SQLite lacks): a
        # destroy either lands before it, leaving nothing to take, or after, finding nothing.
        with Immediate(self) as db:
            row = db.execute(
                f"SELECT data, expires FROM {self.table} WHERE id = ? AND {LIVE}", (key, now)
            ).fetchone()
            db.execute(f"DELETE FROM {self.table} WHERE id = ?", (key,))
        return None if row is None else self._row_record(id, row)
