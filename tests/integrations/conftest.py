"""Fixtures shared by the framework tests: storages, an I/O-counting store, a real outage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from websession import SessionStorage
from websession.stores.sqlite import SqliteStore

from .helpers import CountingStore, SqliteOutage, make_cookie


@pytest.fixture
def counting_store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def storage(counting_store: CountingStore) -> SessionStorage:
    """A memory storage whose store counts its calls."""
    return SessionStorage(cookie=make_cookie(), store=counting_store)


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[SessionStorage]:
    """A SQLite storage with a short busy timeout, so an outage shows quickly."""
    storage = SessionStorage(cookie=make_cookie(), store=SqliteStore(tmp_path / "sessions.db", timeout=0.05))
    yield storage
    storage.close()


@pytest.fixture
def outage(sqlite_storage: SessionStorage) -> Iterator[SqliteOutage]:
    assert isinstance(sqlite_storage.store, SqliteStore)
    outage = SqliteOutage(sqlite_storage.store)
    yield outage
    outage.end()


# The Django project is imported by test_django.py once Django is set up, not collected on its own.
collect_ignore = ["django_project"]
