"""The SQLite store's user index (websession.users) beyond the conformance suite: its tables on
a database of the previous version, atomicity, storage_key_secret, corrupt entries and purging."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from websession import (
    SessionStoreError,
    create_cookie,
    create_cookie_session_storage,
    create_sqlite_session_storage,
)
from websession.ids import generate_id
from websession.stores.sqlite import SqliteStore
from websession.users import Entry

from ..conformance.harness import FakeClock

COOKIE = create_cookie("s", secrets=["k"], max_age=3600)
ENTRY_COLUMNS = ["user_id", "key", "entry"]


def header_of(set_cookie: str | None) -> str:
    assert set_cookie is not None
    return set_cookie.split(";")[0]


def sign_in(storage: Any, user: str = "ada", **labels: str) -> str:
    session = storage.get_session(None)
    session["theme"] = "dark"
    session.login(user, labels=labels or None)
    return header_of(storage.commit_session(session))


def raw(path: Path | str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        return db.execute(query, params).fetchall()
    finally:
        db.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage(tmp_path: Path, clock: FakeClock) -> Any:
    storage = create_sqlite_session_storage(path=tmp_path / "s.db", cookie=COOKIE, clock=clock)
    yield storage
    storage.close()


# -- tables ----------------------------------------------------------------------------------


def test_a_database_of_the_previous_version_gets_the_index_tables(tmp_path: Path) -> None:
    """The sessions table as the previous version created it, with a session in it: opening
    the store adds the two index tables and leaves the sessions table and its rows alone."""
    path = tmp_path / "old.db"
    old_id = generate_id()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(
        "CREATE TABLE app_sessions (id TEXT PRIMARY KEY, data TEXT NOT NULL, expires REAL) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX app_sessions_expires ON app_sessions (expires)")
    db.execute("INSERT INTO app_sessions VALUES (?, ?, NULL)", (old_id, '{"cart":[1]}'))
    db.close()
    storage = create_sqlite_session_storage(path=path, table="app_sessions", cookie=COOKIE)
    try:
        session = storage.get_session(header_of(storage.cookie.serialize(old_id)))
        assert session["cart"] == [1]
        session.login("ada", labels={"device": "laptop"})
        header = header_of(storage.commit_session(session))
        again = storage.get_session(header)
        assert again.user == "ada" and again["cart"] == [1]
        [device] = storage.sessions_of("ada")
        assert device.key == again.id and device.labels == {"device": "laptop"}
    finally:
        storage.close()
    tables = {row[0] for row in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"app_sessions", "app_sessions_users", "app_sessions_user_generations"}
    assert raw(path, "SELECT id FROM app_sessions WHERE id = ?", old_id) == []  # moved on sign-in
    assert [row[1] for row in raw(path, "PRAGMA table_info(app_sessions_users)")] == ENTRY_COLUMNS


def test_index_rows_hold_the_entry_as_json(storage: Any, clock: FakeClock) -> None:
    header = sign_in(storage, device="phone")
    store: SqliteStore = storage.store
    [(user, key, text)] = raw(store.path, f"SELECT user_id, key, entry FROM {store.users_table}")
    assert (user, key) == ("ada", storage.get_session(header).id)
    assert Entry.from_json(__import__("json").loads(text)) == Entry(clock.now, {"device": "phone"}, 3600.0)


# -- atomicity -------------------------------------------------------------------------------


def test_a_failed_index_write_leaves_no_session_behind(storage: Any) -> None:
    """The session row and its entry are one transaction: when the entry cannot be written,
    the row is rolled back too, and the sign-in fails loudly rather than half-happening."""
    store: SqliteStore = storage.store
    anonymous = storage.get_session(None)
    anonymous["a"] = 1
    header = header_of(storage.commit_session(anonymous))
    raw(store.path, f"DROP TABLE {store.users_table}")
    session = storage.get_session(header)
    session.login("ada")
    with pytest.raises(SessionStoreError, match="no such table"):
        storage.commit_session(session)
    assert store.count() == 0  # the anonymous row was taken, the bound one never committed


def test_a_stale_generation_writes_nothing(storage: Any, clock: FakeClock) -> None:
    store: SqliteStore = storage.store
    assert store.generation("ada") == 0
    assert store.revoke_user("ada", None) == 0 and store.generation("ada") == 1
    assert store.create_for_user({"a": 1}, None, "ada", Entry(clock.now), 0) is None
    assert store.count() == 0 and store.sessions_of("ada") == []
    assert store.create_for_user({"a": 1}, None, "ada", Entry(clock.now), 1) is not None
    assert store.generation("ada", bump=True) == 2


def test_generations_survive_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "s.db").revoke_user("ada", None)
    assert SqliteStore(tmp_path / "s.db").generation("ada") == 1


def test_revocations_from_two_stores_on_one_file_race_safely(tmp_path: Path) -> None:
    """Two stores (two processes' worth of connections) revoke and bump the same user at
    once: every increment lands, because each is one write transaction."""
    stores = [SqliteStore(tmp_path / "s.db", timeout=30) for _ in range(2)]
    barrier = threading.Barrier(8)

    def work(store: SqliteStore) -> None:
        barrier.wait(30)
        for _ in range(25):
            store.revoke_user("ada", None)

    threads = [threading.Thread(target=work, args=(stores[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert stores[0].generation("ada") == 200


# -- a corrupt generation --------------------------------------------------------------------

#: Values of the INTEGER generation column that websession never writes (SQLite keeps text,
#: blobs and fractions as they are).
CORRUPT_GENERATIONS = ["seven", "", 1.5, b"\x07"]


def corrupt_generation(store: SqliteStore, value: Any, user: str = "ada") -> None:
    store.generation(user, bump=True)  # the row exists
    raw(store.path, f"UPDATE {store.generations_table} SET generation = ? WHERE user_id = ?", value, user)


@pytest.mark.parametrize("value", CORRUPT_GENERATIONS, ids=repr)
def test_a_corrupt_generation_is_logged_never_raised_and_replaced_by_the_next_revocation(
    storage: Any, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store: SqliteStore = storage.store
    header = sign_in(storage, device="laptop")
    corrupt_generation(store, value)
    with caplog.at_level(logging.WARNING, logger="websession"):
        assert store.generation("ada") == -1  # a value no session was ever stamped with
    assert "generation" in caplog.text and "unreadable" in caplog.text
    session = storage.get_session(header)
    session.regenerate()  # a move reads the generation twice: both times -1, so it moves
    header = header_of(storage.commit_session(session))
    assert storage.get_session(header).user == "ada"
    assert [device.labels for device in storage.sessions_of("ada")] == [{"device": "laptop"}]
    phone = sign_in(storage, device="phone")
    session = storage.get_session(phone)
    session.logout()
    storage.commit_session(session)
    assert storage.revoke_user("ada") == 1 and storage.get_session(header).is_new
    # The revocation wrote a readable generation, unlike any the corrupt one could hide.
    [(stored,)] = raw(store.path, f"SELECT generation FROM {store.generations_table}")
    assert isinstance(stored, int) and stored >= 2**52
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="websession"):
        assert store.generation("ada") == stored
        assert store.generation("ada", bump=True) == stored + 1
    assert caplog.text == ""


def test_a_corrupt_generation_never_revives_a_revoked_cookie(tmp_path: Path) -> None:
    """A cookie storage keeping its revocations in SQLite: a cookie signed in at generation 0
    and revoked stays revoked when the generation row is damaged (reading it as 0 would bring
    it back), and a revocation after the damage still signs out what was signed in during it."""
    generations = create_sqlite_session_storage(path=tmp_path / "g.db", cookie=COOKIE)
    storage = create_cookie_session_storage(cookie=COOKIE, revocation=generations)
    store: SqliteStore = generations.store
    try:
        revoked = sign_in(storage)
        storage.revoke_user("ada")
        assert storage.get_session(revoked).is_new
        raw(store.path, f"UPDATE {store.generations_table} SET generation = 'garbage'")
        assert storage.get_session(revoked).is_new
        during = sign_in(storage)
        assert storage.get_session(during).user == "ada"
        storage.revoke_user("ada")
        assert storage.get_session(during).is_new and storage.get_session(revoked).is_new
        after = sign_in(storage)
        assert storage.get_session(after).user == "ada"
    finally:
        generations.close()


# -- storage_key_secret ----------------------------------------------------------------------


def test_the_index_holds_storage_keys_never_ids(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    storage = create_sqlite_session_storage(path=path, cookie=COOKIE, storage_key_secret="server-key")
    store: SqliteStore = storage.store
    try:
        headers = [sign_in(storage) for _ in range(2)]
        ids = [storage.get_session(header).id for header in headers]
        keys = sorted(row[0] for row in raw(path, f"SELECT key FROM {store.users_table}"))
        assert keys == sorted(store.storage_key(id) for id in ids)
        assert sorted(device.key for device in storage.sessions_of("ada")) == keys
        store.close()  # checkpoint the WAL into the file, then look at every byte
        dump = path.read_bytes()
        assert not any(id.encode() in dump for id in ids)
        assert storage.revoke(storage.sessions_of("ada")[0], user="ada") is True
        assert storage.revoke_user("ada") == 1
        assert all(storage.get_session(header).is_new for header in headers)
    finally:
        storage.close()


# -- corrupt entries -------------------------------------------------------------------------

CORRUPT = [
    "not json",
    "[1, 2]",
    '{"labels": {}}',
    '{"created": "yesterday"}',
    '{"created": 1e300}',
    '{"created": NaN}',
    '{"created": 0, "lifetime": 1e300}',
    '{"created": 0, "labels": {"device": 3}}',
    7,
    b"\xff\xfe",
]


@pytest.mark.parametrize("garbage", CORRUPT, ids=repr)
def test_a_corrupt_entry_is_dropped_with_its_session_never_raised(
    storage: Any, garbage: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store: SqliteStore = storage.store
    laptop, phone = sign_in(storage, device="laptop"), sign_in(storage, device="phone")
    broken = storage.get_session(laptop).id
    raw(store.path, f"UPDATE {store.users_table} SET entry = ? WHERE key = ?", garbage, broken)
    with caplog.at_level(logging.WARNING, logger="websession"):
        devices = storage.sessions_of("ada")
    assert [device.labels for device in devices] == [{"device": "phone"}]
    assert "user index entry is unreadable" in caplog.text
    # Dropped with its session: a bound session outside the index would be out of
    # revoke_user's reach, and the contract counts one without an entry as revoked.
    assert storage.get_session(laptop).is_new
    assert [row[0] for row in raw(store.path, f"SELECT key FROM {store.users_table}")] == [
        storage.get_session(phone).id
    ]


@pytest.mark.parametrize("garbage", CORRUPT[:3], ids=repr)
def test_a_corrupt_entry_ends_the_session_on_its_next_move(storage: Any, garbage: Any) -> None:
    """take_for_user (regenerate, logout, destroy) reads the entry: an unreadable one counts
    as missing, so the session ends with an expired cookie instead of an exception."""
    store: SqliteStore = storage.store
    header = sign_in(storage)
    raw(store.path, f"UPDATE {store.users_table} SET entry = ?", garbage)
    session = storage.get_session(header)
    session.regenerate()
    set_cookie = storage.commit_session(session)
    assert set_cookie is not None and "Expires=Thu, 01 Jan 1970" in set_cookie
    assert store.count() == 0 and raw(store.path, f"SELECT * FROM {store.users_table}") == []


# -- expiry and purging ----------------------------------------------------------------------


def test_purge_prunes_entries_of_expired_and_deleted_sessions(storage: Any, clock: FakeClock) -> None:
    store: SqliteStore = storage.store
    short = create_sqlite_session_storage(
        path=store.path, cookie=create_cookie("s", secrets=["k"], max_age=10), clock=clock
    )
    expired = sign_in(short, "ada")
    deleted = sign_in(storage, "ada")
    live = sign_in(storage, "ada")
    other = sign_in(storage, "grace")
    store.delete(storage.get_session(deleted).id)  # `websession rm`: the row only
    clock.advance(11)
    assert store.purge_expired() == 1
    rows = raw(store.path, f"SELECT user_id, key FROM {store.users_table} ORDER BY user_id")
    assert rows == [("ada", storage.get_session(live).id), ("grace", storage.get_session(other).id)]
    assert short.get_session(expired).is_new
    short.close()


def test_purge_walks_an_index_larger_than_a_page(storage: Any, clock: FakeClock) -> None:
    """2500 dead entries spread over many users, between live ones: every dead one goes, in
    pages, and no live one does."""
    store: SqliteStore = storage.store
    live = {(f"user{n:04d}", store.storage_key(generate_id())) for n in range(0, 3000, 7)}
    db = sqlite3.connect(store.path, isolation_level=None)
    db.executemany(
        f"INSERT INTO {store.table} (id, data, expires) VALUES (?, '{{}}', NULL)", [(k,) for _, k in live]
    )
    entry = '{"created":0,"labels":{},"lifetime":null}'
    dead = [(f"user{n:04d}", generate_id()) for n in range(3000) if n % 7]
    rows = [(user, key, entry) for user, key in [*live, *dead]]
    db.executemany(f"INSERT INTO {store.users_table} (user_id, key, entry) VALUES (?, ?, ?)", rows)
    db.close()
    assert len(dead) > 2500
    assert store.purge_expired() == 0
    assert set(raw(store.path, f"SELECT user_id, key FROM {store.users_table}")) == live
