"""Maintenance of the PostgreSQL store: listing, counting, bulk writes (``websession copy``) and
purging expired rows.

What PostgreSQL guarantees here:

- ``count`` is one query counted by the server; ``scan`` pages through live rows in id order,
  each page one statement (a consistent view of that page, not of the whole table).
- ``write_many`` sends a batch as one pipelined ``executemany`` in one transaction: the batch
  is written whole or not at all. With ``replace=False`` the ``ON CONFLICT ... WHERE`` takes
  over only rows that have expired, decided under the row's lock, so a live session written
  by a request meanwhile is never overwritten.
- ``purge_expired`` deletes in short batches with ``FOR UPDATE SKIP LOCKED``: it never waits
  on (or blocks for long) the rows requests are using, and two purges can run at once.

What it does not: expire anything by itself. Expired rows (and the user index entries of
sessions that are gone) take space until ``purge_expired`` runs (``websession purge``, or a
scheduled job); until then every read treats them as absent. A scan that runs while requests
write may miss rows created behind its position.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from itertools import islice
from typing import Any

from ..base import Record
from .jsonb import _refuse_nul, jsonb_text
from .pools import PooledStore

_PURGE_BATCH = 1000
_SCAN_PAGE = 500
_WRITE_BATCH = 1000


class Maintenance(PooledStore):
    """The maintenance operations of :class:`~websession.stores.postgres.PostgresStore`."""

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
