"""The PostgreSQL store's user index (websession.users) beyond the conformance suite: round
trips counted on the wire, the interleavings that could let a revoked session live on (forced
with held transactions), tables on a deployment of the previous version, storage_key_secret,
corrupt entries and purging. Each test has a table of its own in the run's database."""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg import pq
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from websession import SessionStoreError, create_cookie, create_postgres_session_storage
from websession.ids import generate_id
from websession.stores._entries import entry_text
from websession.stores.postgres import PostgresStore, sibling_table
from websession.users import Entry

from ..conformance.harness import AsyncDoor, Browser, Door, SyncDoor
from .test_postgres import COOKIE, Clock, raw

EXPIRED = "Expires=Thu, 01 Jan 1970"


@pytest.fixture
def table() -> str:
    return f"t_{secrets.token_hex(4)}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def storage(postgres_dsn: str, table: str, clock: Clock) -> Iterator[Any]:
    storage = create_postgres_session_storage(dsn=postgres_dsn, table=table, cookie=COOKIE, clock=clock)
    storage.store.setup()
    yield storage
    storage.close()


@pytest.fixture
def both(door: Door, storage: Any) -> Iterator[Any]:
    """The storage, its async pool (when the door opened one) closed on the door's loop."""
    yield storage
    if isinstance(door, AsyncDoor):
        door.run(storage.aclose())


def header_of(set_cookie: str | None) -> str:
    assert set_cookie is not None and EXPIRED not in set_cookie
    return set_cookie.split(";")[0]


def sign_in(storage: Any, user: str = "ada", **labels: str) -> str:
    session = storage.get_session(None)
    session["theme"] = "dark"
    session.login(user, labels=labels or None)
    return header_of(storage.commit_session(session))


def index_rows(dsn: str, store: PostgresStore) -> list[tuple[str, str]]:
    return [tuple(row) for row in raw(dsn, f"SELECT user_id, key FROM {store.users_table} ORDER BY seq")]


# -- round trips, counted on the wire ----------------------------------------------------------


class Wire:
    """Counts round trips with libpq's protocol trace of a pool's only connection: each time
    the client stops sending messages (F) and reads the server's (B), it waited once."""

    def __init__(self) -> None:
        self.connections: list[Any] = []

    def configure(self, conn: Any) -> None:
        self.connections.append(conn)

    async def aconfigure(self, conn: Any) -> None:
        self.connections.append(conn)

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[int]]:
        trips: list[int] = []
        with tempfile.NamedTemporaryFile("w+", suffix=".trace") as trace:
            for conn in self.connections:
                conn.pgconn.trace(trace.fileno())
                conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            try:
                yield trips
            finally:
                for conn in self.connections:
                    conn.pgconn.untrace()  # flushes
            with open(trace.name) as lines:
                directions = [line.split("\t", 1)[0] for line in lines if line.strip()]
        trips.append(sum(1 for a, b in itertools.pairwise(directions) if (a, b) == ("F", "B")))


@pytest.fixture(params=["sync", "async"])
def door(request: pytest.FixtureRequest) -> Iterator[Door]:
    door: Door = SyncDoor() if request.param == "sync" else AsyncDoor()
    yield door
    if isinstance(door, AsyncDoor):
        door.loop.close()


@pytest.fixture
def wired(door: Door, postgres_dsn: str, table: str, clock: Clock) -> Iterator[tuple[Any, Wire]]:
    """A storage over a one-connection pool whose traffic a Wire can count, on the door's side."""
    wire = Wire()
    options: dict[str, Any] = {"min_size": 1, "max_size": 1, "kwargs": {"autocommit": True}}
    if isinstance(door, AsyncDoor):

        async def open_pool() -> AsyncConnectionPool[Any]:
            pool = AsyncConnectionPool(postgres_dsn, open=False, configure=wire.aconfigure, **options)
            await pool.open(wait=True)
            return pool

        apool = door.run(open_pool())
        storage = create_postgres_session_storage(async_pool=apool, table=table, cookie=COOKIE, clock=clock)
        door.run(storage.store.asetup())
        yield storage, wire
        door.run(apool.close())
    else:
        pool = ConnectionPool(postgres_dsn, open=True, configure=wire.configure, **options)
        pool.wait()
        storage = create_postgres_session_storage(pool=pool, table=table, cookie=COOKIE, clock=clock)
        storage.store.setup()
        yield storage, wire
        pool.close()


def store_call(door: Door, store: PostgresStore, name: str, *args: Any, **kwargs: Any) -> Any:
    if isinstance(door, AsyncDoor):
        return door.run(getattr(store, f"a{name}")(*args, **kwargs))
    return getattr(store, name)(*args, **kwargs)


@pytest.mark.skipif(sys.platform != "linux", reason="psycopg traces the protocol on Linux only")
def test_round_trips_of_every_user_operation(door: Door, wired: tuple[Any, Wire]) -> None:
    storage, wire = wired
    store: PostgresStore = storage.store
    browser, phone = Browser("s"), Browser("s")
    door.request(storage, browser, lambda s: s.set("theme", "dark"))
    door.request(storage, phone, lambda s: s.login("ada", labels={"device": "phone"}))
    measured: dict[str, int] = {}

    def measure(name: str, action: Any) -> Any:
        with wire.counting() as trips:
            result = action()
        measured[name] = trips[0]
        return result

    session = measure("read", lambda: door.get(storage, browser.header))
    session.login("ada", labels={"device": "laptop"})
    browser.receive(measure("commit of a sign-in", lambda: door.commit(storage, session)))
    measure("an unchanged signed-in request", lambda: door.request(storage, browser))
    measure(
        "a signed-in request that changes a key",
        lambda: door.request(storage, browser, lambda s: s.set("n", 1)),
    )
    session = door.get(storage, browser.header)
    session.regenerate()
    browser.receive(measure("commit of a regenerate", lambda: door.commit(storage, session)))
    devices = measure("sessions_of", lambda: door.call(storage, "sessions_of", "ada"))
    measure("generation", lambda: store_call(door, store, "generation", "ada"))
    measure("generation(bump=True)", lambda: store_call(door, store, "generation", "ada", bump=True))
    phone_device = next(d for d in devices if d.labels == {"device": "phone"})
    assert measure("revoke", lambda: door.call(storage, "revoke", phone_device, user="ada")) is True
    other = Browser("s")
    door.request(storage, other, lambda s: s.login("ada"))
    current = door.get(storage, browser.header)
    assert measure("revoke_user", lambda: door.call(storage, "revoke_user", "ada", keep=current)) == 1
    session = door.get(storage, browser.header)
    session.logout()
    browser.receive(measure("commit of a logout", lambda: door.commit(storage, session)))
    assert measured == {
        "read": 1,
        "commit of a sign-in": 2,  # take the anonymous session, create the bound one
        "an unchanged signed-in request": 1,  # the read, as before: nothing new on this path
        "a signed-in request that changes a key": 2,  # read + the same UPDATE as before
        "commit of a regenerate": 2,  # take_for_user + create_for_user
        "sessions_of": 1,
        "generation": 1,
        "generation(bump=True)": 1,
        "revoke": 1,
        "revoke_user": 1,  # two statements, pipelined
        "commit of a logout": 2,
    }


def test_without_pipelining_revoke_user_is_one_explicit_transaction(
    wired: tuple[Any, Wire], door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where libpq cannot pipeline (before 14), revoke_user falls back to BEGIN, its two
    statements, COMMIT: the same result, in four round trips (which the Wire tells apart)."""
    storage, wire = wired
    for _ in range(2):
        door.request(storage, Browser("s"), lambda s: s.login("ada"))
    monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))
    monkeypatch.setattr(psycopg.AsyncPipeline, "is_supported", classmethod(lambda cls: False))
    with wire.counting() as trips:
        assert door.call(storage, "revoke_user", "ada") == 2
    assert trips == [4]
    assert door.call(storage, "sessions_of", "ada") == []


# -- the interleavings, forced ------------------------------------------------------------------


def wait_for_a_lock_wait(dsn: str, relation: str) -> None:
    """Until a backend waits for a lock while running a statement on ``relation``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        waiting = raw(
            dsn,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            f"%{relation}%",
        )
        if waiting[0][0]:
            return
        time.sleep(0.02)
    raise AssertionError("the statement under test never waited for the held lock")


def in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = target()
        except BaseException as exc:  # surfaced by the test
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def finished(thread: threading.Thread, result: dict[str, Any]) -> Any:
    thread.join(30)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]
    return result["value"]


def create_params(store: PostgresStore, clock: Clock, generation: int | None) -> dict[str, Any]:
    key = store.storage_key(store.new_id())
    return {
        "user": "ada",
        "key": key,
        "data": '{"__user__": {"id": "ada"}}',
        "expires": None,
        "entry": entry_text(Entry(clock.now)),
        "generation": generation,
    }


def test_revoke_user_waits_for_a_move_holding_the_generation_then_deletes_its_session(
    storage: Any, postgres_dsn: str, clock: Clock
) -> None:
    """The move (create_for_user with a generation) has locked the generation row and written
    its rows, uncommitted. revoke_user must wait for it and then see and delete them: had its
    deleting statement taken its snapshot before the move committed, the session would live on."""
    store: PostgresStore = storage.store
    params = create_params(store, clock, 0)
    with psycopg.connect(postgres_dsn) as move:  # not autocommit: the transaction stays open
        assert move.execute(store._queries.create_for_user, params).fetchone() is not None
        thread, result = in_thread(lambda: store.revoke_user("ada", None))
        wait_for_a_lock_wait(postgres_dsn, store.generations_table)
        move.commit()
    assert finished(thread, result) == 1
    assert store.count() == 0 and index_rows(postgres_dsn, store) == []


def test_a_move_waits_for_a_revocation_holding_the_generation_then_writes_nothing(
    storage: Any, postgres_dsn: str, clock: Clock
) -> None:
    store: PostgresStore = storage.store
    with psycopg.connect(postgres_dsn) as revocation:
        revocation.execute(store._queries.bump, {"user": "ada"})  # revoke_user's first statement
        thread, result = in_thread(lambda: store.create_for_user({"a": 1}, None, "ada", Entry(clock.now), 0))
        wait_for_a_lock_wait(postgres_dsn, store.generations_table)
        revocation.commit()
    assert finished(thread, result) is None
    assert store.count() == 0 and index_rows(postgres_dsn, store) == []


def test_revoke_waits_for_a_take_of_the_same_session_and_stops_the_move(
    storage: Any, postgres_dsn: str
) -> None:
    """A regenerate has taken the session (uncommitted); revoke of that session waits on its
    rows, finds them gone, and still bumps the generation, so the move's create is refused."""
    store: PostgresStore = storage.store
    header = sign_in(storage)
    session = storage.get_session(header)
    key = store.storage_key(session.id)
    with psycopg.connect(postgres_dsn) as take:
        row = take.execute(store._queries.take_for_user, {"user": "ada", "key": key}).fetchone()
        assert row[0] is not None and row[1] == 0  # the entry, and generation 0
        thread, result = in_thread(lambda: store.revoke(key, "ada"))
        wait_for_a_lock_wait(postgres_dsn, store.users_table)
        take.commit()
    assert finished(thread, result) is False
    assert store.create_for_user({"a": 1}, None, "ada", Entry(datetime.now(timezone.utc)), 0) is None
    assert store.count() == 0 and index_rows(postgres_dsn, store) == []


def test_a_take_waits_for_a_revoke_of_the_same_session_and_finds_it_revoked(
    storage: Any, postgres_dsn: str
) -> None:
    store: PostgresStore = storage.store
    header = sign_in(storage)
    session_id = storage.get_session(header).id
    key = store.storage_key(session_id)
    with psycopg.connect(postgres_dsn) as revoke:
        revoke.execute(store._queries.revoke, {"user": "ada", "key": key, "now": datetime.now(timezone.utc)})
        thread, result = in_thread(lambda: store.take_for_user(session_id, "ada"))
        wait_for_a_lock_wait(postgres_dsn, store.users_table)
        revoke.commit()
    taken = finished(thread, result)
    # Nothing to move (the generation it read is from before the revocation, which only makes
    # a later move's check stricter; without an entry there is no move anyway).
    assert taken.record is None and taken.entry is None
    assert store.generation("ada") == 1
    assert storage.get_session(header).is_new


# -- tables --------------------------------------------------------------------------------------

OLD_TABLE = (
    "CREATE TABLE {t} (id text PRIMARY KEY, data jsonb NOT NULL, expires timestamptz);"
    "CREATE INDEX {t}_expires_idx ON {t} (expires) WHERE expires IS NOT NULL"
)


def old_deployment(dsn: str, table: str) -> str:
    """The table as the previous version created it, with a session in it; returns its id."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in OLD_TABLE.format(t=table).split(";"):
            conn.execute(statement)
        id = generate_id()
        conn.execute(f"INSERT INTO {table} VALUES (%s, %s, NULL)", (id, '{"cart": [1]}'))
    return id


def tables_like(dsn: str, table: str) -> set[str]:
    rows = raw(dsn, "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", f"{table}%")
    return {row[0] for row in rows}


def test_a_deployment_of_the_previous_version_gets_the_index_tables_on_first_use(
    postgres_dsn: str, table: str
) -> None:
    old_id = old_deployment(postgres_dsn, table)
    storage = create_postgres_session_storage(dsn=postgres_dsn, table=table, cookie=COOKIE)
    try:
        session = storage.get_session(header_of(storage.cookie.serialize(old_id)))
        assert session["cart"] == [1]
        session.login("ada", labels={"device": "laptop"})
        header = header_of(storage.commit_session(session))
        again = storage.get_session(header)
        assert again.user == "ada" and again["cart"] == [1]
        assert [device.labels for device in storage.sessions_of("ada")] == [{"device": "laptop"}]
    finally:
        storage.close()
    assert tables_like(postgres_dsn, table) == {table, f"{table}_users", f"{table}_user_generations"}


def test_without_create_table_an_old_deployment_reads_until_setup_adds_the_tables(
    postgres_dsn: str, table: str
) -> None:
    """create_table=False (migrations run setup): sessions keep working without the new tables;
    a sign-in is refused with a store error naming the missing table until setup() runs."""
    old_id = old_deployment(postgres_dsn, table)
    storage = create_postgres_session_storage(
        dsn=postgres_dsn, table=table, cookie=COOKIE, create_table=False
    )
    try:
        header = header_of(storage.cookie.serialize(old_id))
        session = storage.get_session(header)
        session["more"] = 2
        storage.commit_session(session)
        assert dict(storage.get_session(header)) == {"cart": [1], "more": 2}
        fresh = storage.get_session(None)
        fresh.login("ada")
        with pytest.raises(SessionStoreError, match=f'"{table}_user_generations" does not exist'):
            storage.commit_session(fresh)
        storage.store.setup()
        assert tables_like(postgres_dsn, table) == {table, f"{table}_users", f"{table}_user_generations"}
        sign_in(storage)
        assert len(storage.sessions_of("ada")) == 1
    finally:
        storage.close()


def test_schema_qualified_tables_keep_the_index_in_the_schema(postgres_dsn: str, table: str) -> None:
    raw(postgres_dsn, f"CREATE SCHEMA {table}")
    storage = create_postgres_session_storage(dsn=postgres_dsn, table=f"{table}.sessions", cookie=COOKIE)
    try:
        sign_in(storage)
        assert storage.store.users_table == f"{table}.sessions_users"
        assert raw(postgres_dsn, f"SELECT user_id FROM {table}.sessions_users") == [("ada",)]
        assert storage.revoke_user("ada") == 1
        assert raw(postgres_dsn, f"SELECT generation FROM {table}.sessions_user_generations") == [(1,)]
    finally:
        storage.close()


def test_a_63_character_table_name_never_collides_with_its_index_tables(postgres_dsn: str) -> None:
    """PostgreSQL cuts identifiers at 63 characters: `<63 chars>_users` would be cut back to the
    sessions table's own name. The index tables get shortened names with a digest instead."""
    table = "t" + secrets.token_hex(31)
    assert len(table) == 63
    storage = create_postgres_session_storage(dsn=postgres_dsn, table=table, cookie=COOKIE)
    try:
        store: PostgresStore = storage.store
        assert len({table, store.users_table, store.generations_table}) == 3
        assert all(len(name) <= 63 for name in (store.users_table, store.generations_table))
        header = sign_in(storage)
        assert storage.get_session(header).user == "ada"
        assert index_rows(postgres_dsn, store) == [("ada", storage.get_session(header).id)]
        assert storage.revoke_user("ada") == 1 and store.count() == 0
    finally:
        storage.close()


def test_sibling_names_are_stable_and_distinct() -> None:
    assert sibling_table("websession_sessions", "_users") == "websession_sessions_users"
    long_a, long_b = "a" * 60 + "x", "a" * 60 + "y"
    assert sibling_table(long_a, "_users") != sibling_table(long_b, "_users")
    assert sibling_table(long_a, "_users") == sibling_table(long_a, "_users")
    assert sibling_table(f"s.{long_a}", "_user_generations").startswith("s.")


# -- storage_key_secret ---------------------------------------------------------------------------


def test_the_index_holds_storage_keys_never_ids(postgres_dsn: str, table: str) -> None:
    storage = create_postgres_session_storage(
        dsn=postgres_dsn, table=table, cookie=COOKIE, storage_key_secret="server-key"
    )
    store: PostgresStore = storage.store
    try:
        headers = [sign_in(storage) for _ in range(2)]
        ids = [storage.get_session(header).id for header in headers]
        assert sorted(key for _, key in index_rows(postgres_dsn, store)) == sorted(
            store.storage_key(id) for id in ids
        )
        dump = repr(
            [
                raw(postgres_dsn, f"SELECT * FROM {name}")
                for name in (table, store.users_table, store.generations_table)
            ]
        )
        assert not any(id in dump for id in ids)
        assert storage.revoke(storage.sessions_of("ada")[0], user="ada") is True
        assert storage.revoke_user("ada") == 1
        assert all(storage.get_session(header).is_new for header in headers)
    finally:
        storage.close()


# -- bad input and corrupt entries ----------------------------------------------------------------


def test_labels_with_any_character_round_trip(storage: Any) -> None:
    """Entries are JSON text, not jsonb, so a label may hold U+0000 (jsonb cannot)."""
    labels = {"ua": "Mozilla\x00/5.0 ü€😀", "ip": "203.0.113.0/24"}
    sign_in(storage, **labels)
    assert [dict(device.labels) for device in storage.sessions_of("ada")] == [labels]


def test_a_user_id_postgres_cannot_store_is_a_store_error_and_writes_nothing(storage: Any) -> None:
    session = storage.get_session(None)
    session.login("a\x00b")
    with pytest.raises(SessionStoreError, match="U\\+0000"):
        storage.commit_session(session)
    assert storage.store.count() == 0
    with pytest.raises(SessionStoreError, match="NUL"):
        storage.sessions_of("a\x00b")


CORRUPT = [
    "not json",
    "[1, 2]",
    '{"labels": {}}',
    '{"created": 1e300}',
    '{"created": NaN}',
    '{"created": 0, "lifetime": 1e300}',
    '{"created": 0, "labels": {"device": 3}}',
]


@pytest.mark.parametrize("garbage", CORRUPT)
def test_a_corrupt_entry_is_dropped_with_its_session_never_raised(
    door: Door, both: Any, postgres_dsn: str, garbage: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = both
    store: PostgresStore = storage.store
    laptop, phone = sign_in(storage, device="laptop"), sign_in(storage, device="phone")
    broken = store.storage_key(storage.get_session(laptop).id)
    raw(postgres_dsn, f"UPDATE {store.users_table} SET entry = %s WHERE key = %s", garbage, broken)
    with caplog.at_level(logging.WARNING, logger="websession"):
        devices = door.call(storage, "sessions_of", "ada")
    assert [device.labels for device in devices] == [{"device": "phone"}]
    assert "user index entry is unreadable" in caplog.text
    assert storage.get_session(laptop).is_new  # a bound session without an entry: revoked
    assert index_rows(postgres_dsn, store) == [("ada", storage.get_session(phone).id)]


@pytest.mark.parametrize("garbage", CORRUPT[:2])
def test_a_corrupt_entry_ends_the_session_on_its_next_move(
    door: Door, both: Any, postgres_dsn: str, garbage: str
) -> None:
    storage = both
    store: PostgresStore = storage.store
    browser = Browser("s")
    door.request(storage, browser, lambda s: s.login("ada"))
    raw(postgres_dsn, f"UPDATE {store.users_table} SET entry = %s", garbage)
    session = door.get(storage, browser.header)
    session.regenerate()
    set_cookie = door.commit(storage, session)
    assert set_cookie is not None and EXPIRED in set_cookie
    assert store.count() == 0 and index_rows(postgres_dsn, store) == []


# -- expiry and purging ---------------------------------------------------------------------------


def test_purge_prunes_entries_of_expired_and_deleted_sessions(
    storage: Any, postgres_dsn: str, table: str, clock: Clock
) -> None:
    store: PostgresStore = storage.store
    short = create_postgres_session_storage(
        dsn=postgres_dsn, table=table, cookie=create_cookie("s", secrets=["k"], max_age=10), clock=clock
    )
    try:
        expired = sign_in(short, "ada")
        deleted = sign_in(storage, "ada")
        live = sign_in(storage, "ada")
        other = sign_in(storage, "grace")
        store.delete(storage.get_session(deleted).id)  # `websession rm`: the row only
        clock.now += timedelta(seconds=11)
        assert short.get_session(expired).is_new
        assert store.purge_expired() == 1
        assert sorted(index_rows(postgres_dsn, store)) == [
            ("ada", storage.get_session(live).id),
            ("grace", storage.get_session(other).id),
        ]
    finally:
        short.close()


def test_purge_walks_an_index_larger_than_a_page(storage: Any, postgres_dsn: str) -> None:
    """2500 dead entries over many users, between live ones: every dead one goes, a page of
    1000 per statement, and no live one does."""
    store: PostgresStore = storage.store
    entry = '{"created":0,"labels":{},"lifetime":null}'
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {store.table} SELECT 'live' || i, '{{}}', NULL FROM generate_series(0, 2999, 7) i"
        )
        conn.execute(
            f"INSERT INTO {store.users_table} (user_id, key, entry) "
            "SELECT 'user' || lpad(i::text, 4, '0'), "
            "CASE WHEN i %% 7 = 0 THEN 'live' || i ELSE md5(i::text) END, %s "
            "FROM generate_series(0, 2999) i",
            (entry,),
        )
    assert store.purge_expired() == 0
    rows = raw(
        postgres_dsn, f"SELECT count(*), count(*) FILTER (WHERE key LIKE 'live%%') FROM {store.users_table}"
    )
    assert rows == [(429, 429)]
