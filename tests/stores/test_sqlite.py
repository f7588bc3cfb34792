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
