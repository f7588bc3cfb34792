from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from websession import ConfigurationError
from websession.changes import Changes
from websession.stores.sqlite import SqliteStore

from ..conformance.harness import FakeClock


def test_wal_mode_and_schema(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = [row[1] for row in db.execute("PRAGMA index_list(websession_sessions)")]
    assert "websession_sessions_expires" in indexes
    assert oct((tmp_path / "s.db").stat().st_mode & 0o777) == "0o600"
    store.close()


def test_purge_expired_in_batches(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteStore(tmp_path / "s.db", clock=clock)
    for n in range(2500):
        store.create({"n": n}, clock.now)
    keep = store.create({"keep": True}, None)
    clock.advance(1)
    assert store.purge_expired() == 2500
    assert [id for id, _ in store.scan()] == [keep]


def test_expired_rows_are_invisible_and_not_updated(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteStore(tmp_path / "s.db", clock=clock)
    id = store.create({"a": 1}, clock.now)
    clock.advance(1)
    assert store.read(id, None) is None
    from websession.stores.base import Record

    assert store.update(id, Changes({"b": 1}), None, Record({"a": 1})) is None


def test_corrupt_row_is_missing_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteStore(tmp_path / "s.db")
    id = store.create({"a": 1}, None)
    store._db().execute("UPDATE websession_sessions SET data = '[1]' WHERE id = ?", (id,))
    with caplog.at_level(logging.WARNING, logger="websession"):
        assert store.read(id, None) is None
    assert "unreadable" in caplog.text


def test_table_name_must_be_an_identifier(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        SqliteStore(tmp_path / "s.db", table="x; DROP TABLE y")


def test_unopenable_database_is_unavailable(tmp_path: Path) -> None:
    from websession import StoreUnavailableError

    with pytest.raises(StoreUnavailableError):
        SqliteStore(tmp_path / "missing-dir" / "s.db")


def test_a_busy_database_is_unavailable_and_nothing_is_left_open(tmp_path: Path) -> None:
    from websession import StoreUnavailableError

    store = SqliteStore(tmp_path / "s.db", timeout=0.05)
    id = store.create({"n": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnavailableError, match=r"^sqlite database '.*s\.db': database is locked$"):
        store.update(id, Changes({"n": 2}), None, seen)
    with pytest.raises(StoreUnavailableError):
        store.take(id)
    other.execute("ROLLBACK")
    assert not store._db().in_transaction
    assert store.update(id, Changes({"n": 2}), None, seen) is not None
    taken = store.take(id)
    assert taken is not None and taken.data == {"n": 2}
    store.close()


def test_a_failing_statement_rolls_the_transaction_back(tmp_path: Path) -> None:
    from websession import SessionStoreError, StoreUnavailableError

    store = SqliteStore(tmp_path / "s.db")
    id = store.create({"n": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    store._db().execute(
        "CREATE TRIGGER refuse BEFORE DELETE ON websession_sessions BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    with pytest.raises(SessionStoreError, match=r"^sqlite database '.*s\.db': refused$") as caught:
        store.take(id)
    assert not isinstance(caught.value, StoreUnavailableError)
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert not store._db().in_transaction
    assert store.read(id, None) == seen
    store.close()


def test_the_factory_takes_every_old_keyword_and_the_shared_options(tmp_path: Path) -> None:
    from websession import create_cookie, create_sqlite_session_storage
    from websession.options import StorageOptions

    clock = FakeClock()
    storage = create_sqlite_session_storage(
        path=tmp_path / "s.db",
        cookie=create_cookie("s", secrets=["k"]),
        table="t",
        default_ttl=30,
        touch_interval=5,
        rolling=False,
        save_uninitialized=True,
        absolute_timeout=60,
        storage_key_secret="x",
        clock=clock,
        codec="tagged",
    )
    store = storage.store
    assert isinstance(store, SqliteStore) and (store.table, store.touch_interval) == ("t", 5)
    assert (store.default_ttl, store.explicit_ttl, store.hashes_ids, store.clock) == (30, True, True, clock)
    assert (storage.rolling, storage.save_uninitialized, storage.absolute_timeout.seconds) == (
        False,
        True,
        60,
    )
    shared = StorageOptions(ttl=None)
    storage = create_sqlite_session_storage(
        path=tmp_path / "t.db", cookie=create_cookie("s", secrets=["k"]), **shared
    )
    assert (storage.store.default_ttl, storage.store.explicit_ttl) == (None, False)


def test_an_unknown_keyword_is_refused_before_the_database_is_created(tmp_path: Path) -> None:
    from websession import create_sqlite_session_storage

    with pytest.raises(TypeError, match=r"create_sqlite_session_storage\(\) .* 'roling'"):
        create_sqlite_session_storage(path=tmp_path / "s.db", roling=False)  # type: ignore[call-arg]
    assert not (tmp_path / "s.db").exists()


def test_the_url_takes_the_table_ttl_and_shared_options(tmp_path: Path) -> None:
    from websession import open_store

    storage = open_store(f"sqlite://{tmp_path}/s.db?table=t&ttl=60&rolling=false", secrets=["k"])
    assert (storage.store.table, storage.store.default_ttl, storage.store.explicit_ttl) == ("t", 60, True)
    assert not storage.rolling
    with pytest.raises(ConfigurationError, match="does not take: colour"):
        open_store(f"sqlite://{tmp_path}/s.db?colour=red", secrets=["k"])


class _FailingCommit:
    """This thread's connection, but its COMMIT fails as a busy database's would."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database is locked")
        return self.db.execute(sql, *args)


def test_a_failing_commit_is_rolled_back_and_unavailable(tmp_path: Path) -> None:
    from websession import StoreUnavailableError

    store = SqliteStore(tmp_path / "s.db")
    id = store.create({"n": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    db = store._db()
    store._local.connection = _FailingCommit(db)
    with pytest.raises(StoreUnavailableError, match="database is locked"):
        store.update(id, Changes({"n": 2}), None, seen)
    assert not db.in_transaction
    store._local.connection = db
    assert store.read(id, None) == seen
    store.close()


def test_an_error_of_the_block_itself_rolls_back_untranslated(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    id = store.create({"n": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    with pytest.raises(TypeError):
        store.update(id, Changes({"n": object()}), None, seen)
    assert not store._db().in_transaction
    assert store.read(id, None) == seen
    store.close()
