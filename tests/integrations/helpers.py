"""Helpers for the framework tests: an I/O-counting store, a real SQLite outage, cookie readers."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest

from websession import SessionStorage, create_cookie
from websession.stores.memory import MemoryStore
from websession.stores.sqlite import SqliteStore

SECRET = "integration-secret"


class CountingStore(MemoryStore):
    """The memory store, recording every operation, to prove when there is no store I/O."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def create(self, data, expires):
        self.calls.append("create")
        return super().create(data, expires)

    def read(self, id, touch):
        self.calls.append("read")
        return super().read(id, touch)

    def update(self, id, changes, expires, seen):
        self.calls.append("update")
        return super().update(id, changes, expires, seen)

    def delete(self, id):
        self.calls.append("delete")
        super().delete(id)


class SqliteOutage:
    """Makes a real SQLite store unreachable the way production sees it: another connection
    holds the database lock, and the store's short busy timeout runs out."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.blocker: sqlite3.Connection | None = None

    def block_writes(self) -> None:
        """Readers carry on; every write fails (a long transaction elsewhere)."""
        self.end()
        self.blocker = sqlite3.connect(self.store.path, isolation_level=None, check_same_thread=False)
        self.blocker.execute("BEGIN IMMEDIATE")

    def block_all(self) -> None:
        """Even reads fail (another process holds the database exclusively)."""
        self.end()
        self.store.close()
        self.blocker = sqlite3.connect(self.store.path, isolation_level=None, check_same_thread=False)
        self.blocker.execute("PRAGMA locking_mode=EXCLUSIVE")
        self.blocker.execute("BEGIN EXCLUSIVE")
        self.blocker.execute("COMMIT")

    def end(self) -> None:
        if self.blocker is not None:
            self.blocker.close()
            self.blocker = None


def make_cookie():
    return create_cookie("__session", secrets=[SECRET], max_age=3600)


def session_id_of(storage: SessionStorage, set_cookie_or_value: str) -> str | None:
    """The id a Set-Cookie header (or a bare cookie value) carries, as the server reads it."""
    pair = set_cookie_or_value.split(";")[0]
    if "=" not in pair:
        pair = f"{storage.cookie.name}={pair}"
    value = storage.cookie.parse(pair)
    return value if isinstance(value, str) else None


def stored(storage: SessionStorage, set_cookie_or_value: str) -> dict | None:
    """The data stored for the session a cookie names, or None."""
    session_id = session_id_of(storage, set_cookie_or_value)
    if session_id is None:
        return None
    record = storage.store.read(session_id, None)
    return None if record is None else record.data


@contextlib.contextmanager
def serve_asgi(app) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yield its base URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="auto")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
