"""The SQLite store's plumbing: one connection per thread, the tables, write transactions,
error translation and turning rows back into records.

Every other part of the store (:mod:`.store`, :mod:`.users`, :mod:`.maintenance`) is a
subclass of :class:`SqliteDatabase` and reaches the database only through it.

What SQLite guarantees here: each connection is in autocommit, so a statement outside
:class:`Immediate` is a transaction of its own; :class:`Immediate` takes the write lock up
front (``BEGIN IMMEDIATE``), so writers, in any thread or process on this machine, go one at
a time and what one reads inside is still true when it commits; in WAL mode readers never
wait for that writer. A database file websession creates is readable by its owner only.

What it does not: wait for the lock forever. A writer that cannot have it within ``timeout``
(5 s), like a database that cannot be opened, gets
:class:`~websession.errors.StoreUnavailableError` (``sqlite3.OperationalError``); any other
``sqlite3`` error is a :class:`~websession.errors.SessionStoreError`, and neither is retried.
Nor does SQLite's locking work on a network file system: the file belongs on a local disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ... import codec
from ...errors import ConfigurationError, SessionStoreError, StoreUnavailableError
from ..base import ErrorRules, Record, Store, StoreArguments, translate_errors

if TYPE_CHECKING:
    from typing_extensions import Unpack

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: The clause that keeps expired rows invisible; its ``?`` is now, in Unix seconds.
LIVE = "(expires IS NULL OR expires > ?)"

#: A busy (locked past the timeout) or unopenable database is unavailable; any other sqlite3
#: error is the store's.
SQLITE_ERRORS: ErrorRules = (
    (sqlite3.OperationalError, StoreUnavailableError),
    (sqlite3.Error, SessionStoreError),
)


def to_epoch(moment: datetime | None) -> float | None:
    """The expiry column's value for ``moment``: Unix seconds, or NULL for none.

    Example::

        >>> to_epoch(datetime(1970, 1, 1, 0, 1, tzinfo=timezone.utc)), to_epoch(None)
        (60.0, None)
    """
    return None if moment is None else moment.timestamp()


def from_epoch(epoch: float | None) -> datetime | None:
    """The moment of an expiry column's value: the inverse of :func:`to_epoch`.

    Example::

        >>> from_epoch(60.0).isoformat()
        '1970-01-01T00:01:00+00:00'
    """
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


def stored_moment(expires: Any) -> datetime | None:
    """The expiry column as read; ValueError for a value websession never writes.

    Example::

        >>> stored_moment("60")
        Traceback (most recent call last):
        ...
        ValueError: expires is str
    """
    if expires is not None and (not isinstance(expires, (int, float)) or isinstance(expires, bool)):
        # SQLite sorts text and blobs above every number: such an expiry would never expire.
        raise ValueError(f"expires is {type(expires).__name__}")
    try:
        return from_epoch(expires)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"expires {expires!r} is out of range") from exc


class SqliteDatabase(Store):
    """What every part of :class:`~websession.stores.sqlite.SqliteStore` shares: the
    database, one connection per thread, the tables and the error translation."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "websession_sessions",
        touch_interval: float = 60.0,
        timeout: float = 5.0,
        **shared: Unpack[StoreArguments],
    ) -> None:
        super().__init__(**shared)
        if not _TABLE_NAME.fullmatch(table):
            raise ConfigurationError(f"table name {table!r} is not a plain SQL identifier")
        self.path = os.fspath(path)
        self.table = table
        #: The user index (websession.users): one row per signed-in session, and one
        #: generation counter per user that was ever revoked.
        self.users_table = f"{table}_users"
        self.generations_table = f"{table}_user_generations"
        self.touch_interval = touch_interval
        self.timeout = timeout
        #: Entered around every statement; stateless, so one serves every thread.
        self._errors = translate_errors(SQLITE_ERRORS, f"sqlite database {self.path!r}")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._setup()

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _setup(self) -> None:
        if self.path != ":memory:" and not self.path.startswith("file:") and not os.path.exists(self.path):
            # Session data is private: create the file for the owner only (SQLite gives the
            # -wal and -shm files the same permissions).
            with contextlib.suppress(OSError):
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        with self._errors:
            db = self._db()
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(id TEXT PRIMARY KEY, data TEXT NOT NULL, expires REAL) WITHOUT ROWID"
            )
            db.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_expires ON {self.table} (expires)")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.users_table} (user_id TEXT NOT NULL, key TEXT NOT NULL, "
                "entry TEXT NOT NULL, PRIMARY KEY (user_id, key))"  # its rowid: the order of sign-ins
            )
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.generations_table} "
                "(user_id TEXT PRIMARY KEY, generation INTEGER NOT NULL) WITHOUT ROWID"
            )

    def _insert(self, db: sqlite3.Connection, text: str, expires: datetime | None) -> str:
        """Insert a new row under a fresh id and return the id."""
        while True:
            id = self.new_id()
            try:
                db.execute(
                    f"INSERT INTO {self.table} (id, data, expires) VALUES (?, ?, ?)",
                    (self.storage_key(id), text, to_epoch(expires)),
                )
                return id
            except sqlite3.IntegrityError:  # pragma: no cover - 128 random bits
                continue

    def _decode(self, id: str, text: str) -> dict[str, Any] | None:
        try:
            return codec.decode_record(text)
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None

    def _row_record(self, id: str, row: tuple[Any, ...]) -> Record | None:
        """The record of a ``(data, expires)`` row, or None (logged) when it is corrupt."""
        data = self._decode(id, row[0])
        try:
            expires = stored_moment(row[1])
        except ValueError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None
        return None if data is None else Record(data, expires, row[0])


class Immediate:
    """``with Immediate(store) as db``: one write transaction on this thread's connection,
    taken up front (BEGIN IMMEDIATE), so what is read inside is still true when it commits.
    COMMIT when the block ends, ROLLBACK when it (or the COMMIT) fails; sqlite3's errors are
    translated.

    A class rather than ``@contextmanager``: every update and take runs in one.
    """

    __slots__ = ("db", "store")

    def __init__(self, store: SqliteDatabase) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        # try/except rather than ``with store._errors``: nothing to enter when nothing fails.
        try:
            db = self.db = self.store._db()
            db.execute("BEGIN IMMEDIATE")
        except BaseException:
            with self.store._errors:
                raise
        return db

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        db = self.db
        if error is None:
            try:
                db.execute("COMMIT")
            except BaseException:
                with self.store._errors:
                    if db.in_transaction:  # a COMMIT that failed leaves the transaction open
                        db.execute("ROLLBACK")
                    raise
            return
        with self.store._errors:
            if db.in_transaction:
                db.execute("ROLLBACK")
        # The block's own error, translated as if it had been raised inside ``_errors``.
        self.store._errors.__exit__(kind, error, tb)
