"""The SQLite store: the embedded default, on the standard library's sqlite3.

One table (``websession_sessions`` by default) holds ``id``, ``data`` (JSON text) and
``expires`` (Unix seconds, indexed). The database runs in WAL mode so readers never wait for
writers. Changes are applied inside ``BEGIN IMMEDIATE`` transactions, so concurrent requests
(threads or processes) never undo each other. Expired rows are invisible;
``purge_expired()`` deletes them in batches.

Users and their devices (websession.users) live in two more tables beside it, created with it
(so a database of an older version gets them when the store opens it):
``<table>_users`` (``user_id``, ``key``: the session's storage key, ``entry``: JSON text) and
``<table>_user_generations`` (``user_id``, ``generation``). Every operation on them, and on the
session rows they go with, is one ``BEGIN IMMEDIATE`` transaction.

Example::

    >>> import tempfile, os
    >>> from websession import create_cookie, create_sqlite_session_storage
    >>> path = os.path.join(tempfile.mkdtemp(), "sessions.db")
    >>> storage = create_sqlite_session_storage(cookie=create_cookie("s", secrets=["k"]), path=path)
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import SplitResult

from .. import codec
from ..changes import Changes
from ..codec import CodecLike
from ..cookie import CookieLike, as_cookie
from ..errors import ConfigurationError, SessionStoreError, StoreUnavailableError
from ..storage import SessionStorage
from ..urls import cookie_from_options, reject_unknown, storage_options, url_path
from ..users import Device, Entry, Taken, user_digest
from ._entries import UNREADABLE_GENERATION, entry_text, fresh_generation, parse_entry
from .base import Clock, Record, Store, touch_due, utcnow

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PURGE_BATCH = 1000
_LIVE = "(expires IS NULL OR expires > ?)"


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


def _stored_moment(expires: Any) -> datetime | None:
    """The expiry column as read; ValueError for a value websession never writes."""
    if expires is not None and (not isinstance(expires, (int, float)) or isinstance(expires, bool)):
        # SQLite sorts text and blobs above every number: such an expiry would never expire.
        raise ValueError(f"expires is {type(expires).__name__}")
    try:
        return _moment(expires)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"expires {expires!r} is out of range") from exc


class SqliteStore(Store):
    """Records in a SQLite table. Each thread gets its own connection."""

    kind = "sqlite"
    atomic_take = True
    cheap_count = True
    user_index = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "websession_sessions",
        default_ttl: float | None = None,
        touch_interval: float = 60.0,
        timeout: float = 5.0,
        clock: Clock = utcnow,
        storage_key_secret: str | bytes | None = None,
    ) -> None:
        super().__init__(default_ttl=default_ttl, clock=clock, storage_key_secret=storage_key_secret)
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
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._setup()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r}, table={self.table!r})"

    def create(self, data: Mapping[str, Any], expires: datetime | None) -> str:
        text = codec.dumps(data)
        with self._errors():
            return self._insert(self._db(), text, expires)

    def read(self, id: str, touch: datetime | None) -> Record | None:
        now = self.clock().timestamp()
        key = self.storage_key(id)
        with self._errors():
            db = self._db()
            row = db.execute(
                f"SELECT data, expires FROM {self.table} WHERE id = ? AND (expires IS NULL OR expires > ?)",
                (key, now),
            ).fetchone()
            if row is None:
                return None
            text, expires = row
            try:
                stored_expiry = _stored_moment(expires)
            except ValueError as exc:
                codec.log_corrupt(self.kind, id, exc)
                return None
            new_expiry = _epoch(touch)
            if touch is not None and touch_due(stored_expiry, touch, self.clock(), self.touch_interval):
                # Rolling: move the expiry, but only when it moves enough to matter.
                db.execute(
                    f"UPDATE {self.table} SET expires = ? WHERE id = ? AND (expires IS NULL OR expires > ?)",
                    (new_expiry, key, now),
                )
                expires = new_expiry
        data = self._decode(id, text)
        return None if data is None else Record(data, _moment(expires), text)

    def update(self, id: str, changes: Changes, expires: datetime | None, seen: Record) -> Record | None:
        now = self.clock().timestamp()
        key = self.storage_key(id)
        with self._errors():
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    f"SELECT data FROM {self.table} WHERE id = ? AND (expires IS NULL OR expires > ?)",
                    (key, now),
                ).fetchone()
                stored = None if row is None else self._decode(id, row[0])
                if stored is None:
                    db.execute("ROLLBACK")
                    return None
                data = stored
                if changes:
                    data = changes.apply(stored)
                    text = codec.dumps(data)
                    db.execute(
                        f"UPDATE {self.table} SET data = ?, expires = ? WHERE id = ?",
                        (text, _epoch(expires), key),
                    )
                else:
                    text = row[0]
                    db.execute(f"UPDATE {self.table} SET expires = ? WHERE id = ?", (_epoch(expires), key))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return Record(data, expires, text)

    def delete(self, id: str) -> None:
        with self._errors():
            self._db().execute(f"DELETE FROM {self.table} WHERE id = ?", (self.storage_key(id),))

    def take(self, id: str) -> Record | None:
        now = self.clock().timestamp()
        key = self.storage_key(id)
        with self._errors():
            db = self._db()
            # One write transaction (not DELETE ... RETURNING, which older SQLite lacks): a
            # destroy either lands before it, leaving nothing to take, or after, finding nothing.
            db.execute("BEGIN IMMEDIATE")
            try:
                live = "(expires IS NULL OR expires > ?)"
                row = db.execute(
                    f"SELECT data, expires FROM {self.table} WHERE id = ? AND {live}", (key, now)
                ).fetchone()
                db.execute(f"DELETE FROM {self.table} WHERE id = ?", (key,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return None if row is None else self._row_record(id, row)

    # -- users and their devices -------------------------------------------------------------
    #
    # Each operation is one BEGIN IMMEDIATE transaction over the session row(s), the index rows
    # and the generation row: SQLite lets one writer in at a time, so no interleaving of two
    # operations exists and the order of the statements inside does not matter.

    def create_for_user(
        self,
        data: Mapping[str, Any],
        expires: datetime | None,
        user: str,
        entry: Entry,
        generation: int | None,
    ) -> str | None:
        text = codec.dumps(data)
        with self._immediate() as db:
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
        with self._immediate() as db:
            found = db.execute(
                f"SELECT entry FROM {self.users_table} WHERE user_id = ? AND key = ?", (user, key)
            ).fetchone()
            db.execute(f"DELETE FROM {self.users_table} WHERE user_id = ? AND key = ?", (user, key))
            generation = self._generation(db, user)
            row = db.execute(
                f"SELECT data, expires FROM {self.table} WHERE id = ? AND {_LIVE}",
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
        with self._errors():
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
        devices: list[tuple[datetime, int, Device]] = []
        dead: list[str] = []
        unreadable: list[str] = []
        for order, key, text, expires, live in rows:
            if not live:
                dead.append(key)
                continue
            try:
                moment = _stored_moment(expires)
            except ValueError:
                continue  # a session row websession never wrote: not listed, and read as missing
            entry = parse_entry(self.kind, key, text)
            device = None if entry is None else entry.device(key, moment, now)
            if device is None:
                unreadable.append(key)
            else:
                devices.append((device.created, order, device))
        if dead or unreadable:
            self._prune(user, dead, unreadable, now.timestamp())
        # Oldest sign-in first; sign-ins in the same instant in the order they were indexed.
        return [device for _, _, device in sorted(devices, key=lambda item: item[:2])]

    def revoke(self, key: str, user: str) -> bool:
        with self._immediate() as db:
            self._bump(db, user)
            db.execute(f"DELETE FROM {self.users_table} WHERE user_id = ? AND key = ?", (user, key))
            live = db.execute(
                f"DELETE FROM {self.table} WHERE id = ? AND {_LIVE}", (key, self.clock().timestamp())
            ).rowcount
            db.execute(f"DELETE FROM {self.table} WHERE id = ?", (key,))
        return live > 0

    def revoke_user(self, user: str, keep: str | None) -> int:
        doomed = f"SELECT key FROM {self.users_table} WHERE user_id = ? AND key IS NOT ?"
        with self._immediate() as db:
            self._bump(db, user)
            live = db.execute(
                f"DELETE FROM {self.table} WHERE id IN ({doomed}) AND {_LIVE}",
                (user, keep, self.clock().timestamp()),
            ).rowcount
            db.execute(f"DELETE FROM {self.table} WHERE id IN ({doomed})", (user, keep))
            db.execute(f"DELETE FROM {self.users_table} WHERE user_id = ? AND key IS NOT ?", (user, keep))
        return int(live)

    def generation(self, user: str, *, bump: bool = False) -> int:
        if bump:
            with self._immediate() as db:
                return self._bump(db, user)
        with self._errors():
            return self._generation(self._db(), user)

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Stream live records in id order, a page at a time."""
        after = ""
        while True:
            with self._errors():
                rows = (
                    self._db()
                    .execute(
                        f"SELECT id, data, expires FROM {self.table} WHERE id > ? "
                        "AND (expires IS NULL OR expires > ?) ORDER BY id LIMIT 500",
                        (after, self.clock().timestamp()),
                    )
                    .fetchall()
                )
            if not rows:
                return
            for id, text, expires in rows:
                data = self._decode(id, text)
                try:
                    moment = _stored_moment(expires)
                except ValueError:
                    continue
                if data is not None:
                    yield id, Record(data, moment, text)
            after = rows[-1][0]

    def count(self) -> int:
        """Live rows, counted by the database."""
        with self._errors():
            row = (
                self._db()
                .execute(
                    f"SELECT COUNT(*) FROM {self.table} WHERE expires IS NULL OR expires > ?",
                    (self.clock().timestamp(),),
                )
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
            (self.storage_key(id), codec.dumps(record.data), _epoch(record.expires))
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
        with self._errors():
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                cursor = db.executemany(
                    f"INSERT INTO {self.table} (id, data, expires) VALUES (?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET data = excluded.data, expires = excluded.expires" + guard,
                    rows,
                )
                written = cursor.rowcount
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return written

    def purge_expired(self) -> int:
        """Delete expired rows in batches of 1000, then the user index entries of sessions that
        are gone or expired; return how many session rows were deleted."""
        total = 0
        now = self.clock().timestamp()
        while True:
            with self._errors():
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

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def _purge_index(self, now: float) -> None:
        """Delete index entries whose session is gone or expired, walking the index in key
        order a page at a time: every entry is looked at once, each DELETE is short."""
        after: tuple[str, str] = ("", "")
        while True:
            with self._errors():
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

    # -- plumbing --------------------------------------------------------------------------

    def _insert(self, db: sqlite3.Connection, text: str, expires: datetime | None) -> str:
        """Insert a new row under a fresh id and return the id."""
        while True:
            id = self.new_id()
            try:
                db.execute(
                    f"INSERT INTO {self.table} (id, data, expires) VALUES (?, ?, ?)",
                    (self.storage_key(id), text, _epoch(expires)),
                )
                return id
            except sqlite3.IntegrityError:  # pragma: no cover - 128 random bits
                continue

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
        with self._immediate() as db:
            db.executemany(
                f"DELETE FROM {self.users_table} WHERE user_id = ? AND key = ? AND NOT EXISTS "
                f"(SELECT 1 FROM {self.table} WHERE id = ? AND {_LIVE})",
                [(user, key, key, now) for key in dead],
            )
            db.executemany(
                f"DELETE FROM {self.users_table} WHERE user_id = ? AND key = ?",
                [(user, key) for key in unreadable],
            )
            db.executemany(f"DELETE FROM {self.table} WHERE id = ?", [(key,) for key in unreadable])

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front (BEGIN IMMEDIATE): what is read inside is
        still true when it commits."""
        with self._errors():
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _row_record(self, id: str, row: tuple[Any, ...]) -> Record | None:
        """The record of a ``(data, expires)`` row, or None (logged) when it is corrupt."""
        data = self._decode(id, row[0])
        try:
            expires = _stored_moment(row[1])
        except ValueError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None
        return None if data is None else Record(data, expires, row[0])

    def _setup(self) -> None:
        if self.path != ":memory:" and not self.path.startswith("file:") and not os.path.exists(self.path):
            # Session data is private: create the file for the owner only (SQLite gives the
            # -wal and -shm files the same permissions).
            with contextlib.suppress(OSError):
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        with self._errors():
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

    def _decode(self, id: str, text: str) -> dict[str, Any] | None:
        try:
            return codec.decode_record(text)
        except codec.CorruptRecordError as exc:
            codec.log_corrupt(self.kind, id, exc)
            return None

    def _errors(self) -> _SqliteErrors:
        return _SqliteErrors(self.path)


class _SqliteErrors:
    """Turn sqlite3 errors into websession's: a busy or unopenable database is unavailable."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if isinstance(error, sqlite3.OperationalError):
            raise StoreUnavailableError(f"sqlite database {self.path!r}: {error}") from error
        if isinstance(error, sqlite3.Error):
            raise SessionStoreError(f"sqlite database {self.path!r}: {error}") from error


__all__ = ["SqliteStore"]


def create_sqlite_session_storage(
    *,
    path: str | os.PathLike[str],
    cookie: CookieLike = None,
    table: str = "websession_sessions",
    default_ttl: float | None = None,
    touch_interval: float = 60.0,
    rolling: bool = True,
    save_uninitialized: bool = False,
    absolute_timeout: float | None = None,
    storage_key_secret: str | bytes | None = None,
    clock: Clock = utcnow,
    codec: CodecLike = None,
) -> SessionStorage:
    """Sessions in a SQLite database file: the embedded default.

    ``absolute_timeout`` (seconds) ends a session that long after its id was issued, however
    active; ``storage_key_secret`` keeps records under a keyed hash of the id, so a dump of the
    store holds no live ids (docs/security.md).

    Example::

        >>> import os, tempfile
        >>> from websession import create_cookie
        >>> path = os.path.join(tempfile.mkdtemp(), "sessions.db")
        >>> storage = create_sqlite_session_storage(path=path, cookie=create_cookie("s", secrets=["k"]))
        >>> session = storage.get_session(None)
        >>> session["n"] = 1
        >>> storage.get_session(storage.commit_session(session))["n"]
        1
    """
    store = SqliteStore(
        path,
        table=table,
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


def open_url(url: SplitResult, options: dict[str, Any]) -> SessionStorage:
    """``sqlite:///var/lib/app/sessions.db`` (absolute) or ``sqlite://./sessions.db``."""
    cookie = cookie_from_options(options)
    shared = storage_options(options)
    ttl = options.pop("ttl", None)
    table = options.pop("table", "websession_sessions")
    reject_unknown("sqlite", options)
    return create_sqlite_session_storage(
        path=url_path(url),
        cookie=cookie,
        table=table,
        default_ttl=None if ttl is None else float(ttl),
        **shared,
    )
