"""The SQLite store's maintenance: scan, count, write (migrations and imports) and purge.

Expired rows stay in the table, invisible, until :meth:`SqliteMaintenance.purge_expired`
deletes them, a batch per statement so no write transaction holds the database for long.

What SQLite guarantees here: ``write_many`` is one ``BEGIN IMMEDIATE`` transaction, so a batch
lands whole or not at all, and with ``replace=False`` it never overwrites a live row, even one
written while it ran. ``count`` is counted by the database, in one statement.

What it does not: give a snapshot. ``scan`` reads a page of rows per statement (in id order)
and ``purge_expired`` deletes a batch per statement, so sessions written meanwhile may or may
not be seen, and a purge that fails halfway has deleted the batches before it. The space
deleted rows held is reused by SQLite, not returned to the file system (``VACUUM`` does that).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from ... import codec
from ..base import Record
from .database import LIVE, Immediate, SqliteDatabase, stored_moment, to_epoch

_PURGE_BATCH = 1000
_SCAN_PAGE = 500


class SqliteMaintenance(SqliteDatabase):
    """The maintenance half of :class:`~websession.stores.sqlite.SqliteStore`."""

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Stream live records in id order, a page at a time."""
        after = ""
        while True:
            with self._errors:
                rows = (
                    self._db()
                    .execute(
                        f"SELECT id, data, expires FROM {self.table} WHERE id > ? "
                        f"AND {LIVE} ORDER BY id LIMIT {_SCAN_PAGE}",
                        (after, self.clock().timestamp()),
                    )
                    .fetchall()
                )
            if not rows:
                return
            for id, text, expires in rows:
                data = self._decode(id, text)
                try:
                    moment = stored_moment(expires)
                except ValueError:
                    continue
                if data is not None:
                    yield id, Record(data, moment, text)
            after = rows[-1][0]

    def count(self) -> int:
        """Live rows, counted by the database."""
        with self._errors:
            row = (
                self._db()
                .execute(f"SELECT COUNT(*) FROM {self.table} WHERE {LIVE}", (self.clock().timestamp(),))
                .fetchone()
            )
        return int(row[0])

    def write(
        self, id: str, data: Mapping[str, Any], expires: datetime | None, *, replace: bool = True
    ) -> bool:
        return self.write_many([(id, Record(dict(data), expires))], replace=replace) == 1

    def write_many(self, records: Iterable[tuple[str, Record]], *, replace: bool = True) -> int:
        """Write a batch in one transaction. With ``replace=False`` only rows that are missing
        or expired are written."""
        now = self.clock().timestamp()
        rows: list[tuple[Any, ...]] = [
            (self.storage_key(id), codec.dumps(record.data), to_epoch(record.expires))
            for id, record in records
            if not self.is_expired(record.expires)
        ]
        if not rows:
            return 0
        # An upsert whose WHERE fails changes nothing, so rowcount counts only rows written.
        guard = ""
        if not replace:
            guard = f" WHERE {self.table}.expires IS NOT NULL AND {self.table}.expires <= ?"
            rows = [(*row, now) for row in rows]
        with Immediate(self) as db:
            written = db.executemany(
                f"INSERT INTO {self.table} (id, data, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET data = excluded.data, expires = excluded.expires" + guard,
                rows,
            ).rowcount
        return written

    def purge_expired(self) -> int:
        """Delete expired rows in batches of 1000, then the user index entries of sessions that
        are gone or expired; return how many session rows were deleted."""
        total = 0
        now = self.clock().timestamp()
        while True:
            with self._errors:
                cursor = self._db().execute(
                    f"DELETE FROM {self.table} WHERE id IN "
                    f"(SELECT id FROM {self.table} WHERE expires <= ? LIMIT {_PURGE_BATCH})",
                    (now,),
                )
            total += cursor.rowcount
            if cursor.rowcount < _PURGE_BATCH:
                break
        self._purge_index(now)
        return total

    def _purge_index(self, now: float) -> None:
        """Delete index entries whose session is gone or expired, walking the index in key
        order a page at a time: every entry is looked at once, each DELETE is short."""
        after: tuple[str, str] = ("", "")
        while True:
            with self._errors:
                db = self._db()
                page = db.execute(
                    f"SELECT user_id, key FROM {self.users_table} WHERE (user_id, key) > (?, ?) "
                    f"ORDER BY user_id, key LIMIT {_PURGE_BATCH}",
                    after,
                ).fetchall()
                if not page:
                    return
                last = (page[-1][0], page[-1][1])
                db.execute(
                    f"DELETE FROM {self.users_table} WHERE (user_id, key) > (?, ?) "
                    f"AND (user_id, key) <= (?, ?) AND NOT EXISTS (SELECT 1 FROM {self.table} s "
                    f"WHERE s.id = {self.users_table}.key AND (s.expires IS NULL OR s.expires > ?))",
                    (*after, *last, now),
                )
            if len(page) < _PURGE_BATCH:
                return
            after = last
