"""PostgreSQL store behaviour beyond the conformance suite: JSONB fidelity, the one-statement
update, expiry, purging, pools and errors. Runs against the local server (tests/servers/postgres.py)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from websession import (
    ConfigurationError,
    SessionStoreError,
    StoreUnavailableError,
    create_cookie,
    create_postgres_session_storage,
    open_store,
)
from websession.changes import Changes
from websession.stores.base import Record
from websession.stores.postgres import PostgresStore, jsonb_text

COOKIE = create_cookie("s", secrets=["k"], max_age=3600)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def table() -> str:
    return f"t_{secrets.token_hex(4)}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(postgres_dsn: str, table: str, clock: Clock):
    store = PostgresStore(dsn=postgres_dsn, table=table, clock=clock)
    yield store
    store.close()


def raw(dsn: str, query: str, *params):
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- fidelity ------------------------------------------------------------------------------

EXACT = {
    "big": 2**63 - 1,
    "bigger": 2**64 + 1,
    "negative": -(2**70),
    "float": 0.1 + 0.2,
    "one_point_oh": 1.0,
    "huge": 1e300,
    "large": 1e22,
    "tiny": 5e-324,
    "small": 1.5e-7,
    "empty_list": [],
    "empty_dict": {},
    "text": 'ü€😀 \u2028 "q" \\',
    "nested": {"a": [1, {"b": [], "c": 2.5e-10}], "n": None, "t": True},
    "": "empty key",
}


def test_values_keep_type_and_value_through_jsonb(store: PostgresStore) -> None:
    id = store.create(EXACT, None)
    record = store.read(id, None)
    assert record is not None
    for key, value in EXACT.items():
        assert record.data[key] == value and type(record.data[key]) is type(value), key
    updated = store.update(id, Changes({"later": 1e300, "f": -1.25e-300}), None, record)
    assert updated is not None
    assert updated.data["later"] == 1e300 and type(updated.data["later"]) is float
    assert updated.data["f"] == -1.25e-300
    assert updated.data == {**EXACT, "later": 1e300, "f": -1.25e-300}


def test_negative_zero_becomes_zero_as_documented(store: PostgresStore) -> None:
    id = store.create({"z": -0.0}, None)
    record = store.read(id, None)
    assert record is not None and record.data["z"] == 0.0 and type(record.data["z"]) is float


def test_jsonb_text_writes_exponent_floats_positionally() -> None:
    assert jsonb_text({"a": 1e300})[:8] == '{"a":100'
    assert jsonb_text({"a": 1e300}).endswith(".0}")
    assert jsonb_text([5e-324]) == "[0." + "0" * 323 + "5]"
    assert jsonb_text({"plain": 0.5, "s": "1e5"}) == '{"plain":0.5,"s":"1e5"}'


def test_nul_character_is_refused_and_nothing_is_written(
    store: PostgresStore, postgres_dsn: str, table: str
) -> None:
    with pytest.raises(SessionStoreError, match=r"'bad'.*U\+0000"):
        store.create({"ok": 1, "bad": ["x\x00y"]}, None)
    id = store.create({"ok": 1}, None)
    record = store.read(id, None)
    assert record is not None
    with pytest.raises(SessionStoreError, match="U\\+0000"):
        store.update(id, Changes({"k": {"nested\x00key": 1}}), None, record)
    assert store.read(id, None) == record
    assert raw(postgres_dsn, f"SELECT count(*) FROM {table}") == [(1,)]


def test_update_leaves_untouched_values_as_stored(
    store: PostgresStore, postgres_dsn: str, table: str
) -> None:
    """A value Python would write differently (1.10) keeps its stored form: only changed keys
    are sent, and the jsonb operators never round-trip the rest through Python."""
    id = store.create({"a": 1}, None)
    raw(postgres_dsn, f"""UPDATE {table} SET data = '{{"price": 1.10, "a": 1}}' WHERE id = %s""", id)
    record = store.read(id, None)
    assert record is not None
    store.update(id, Changes({"b": 2}, frozenset({"a"})), None, record)
    assert raw(postgres_dsn, f"SELECT data::text FROM {table} WHERE id = %s", id) == [
        ('{"b": 2, "price": 1.10}',)
    ]


def test_update_applies_to_the_stored_row_not_to_what_was_seen(store: PostgresStore) -> None:
    id = store.create({"a": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    store.update(id, Changes({"b": 2}), None, seen)
    result = store.update(id, Changes({"c": 3}, frozenset({"a"})), None, seen)
    assert result is not None and result.data == {"b": 2, "c": 3}


# -- expiry ----------------------------------------------------------------------------------


def test_expired_rows_are_invisible_and_never_updated(store: PostgresStore, clock: Clock) -> None:
    id = store.create({"a": 1}, clock.now + timedelta(seconds=10))
    seen = store.read(id, None)
    assert seen is not None and seen.expires == clock.now + timedelta(seconds=10)
    clock.now += timedelta(seconds=11)
    assert store.read(id, None) is None
    assert store.read(id, clock.now + timedelta(hours=1)) is None  # a rolling read does not revive it
    assert store.update(id, Changes({"b": 2}), clock.now + timedelta(hours=1), seen) is None
    assert list(store.scan()) == []


def test_rolling_read_moves_expiry_only_when_it_matters(
    store: PostgresStore, clock: Clock, postgres_dsn: str, table: str
) -> None:
    first = clock.now + timedelta(hours=1)
    id = store.create({"a": 1}, first)
    small = store.read(id, first + timedelta(seconds=5))
    assert small is not None and small.expires == first
    later = first + timedelta(minutes=10)
    moved = store.read(id, later)
    assert moved is not None and moved.expires == later
    assert raw(postgres_dsn, f"SELECT expires FROM {table} WHERE id = %s", id) == [(later,)]
    never = store.create({"a": 1}, None)
    touched = store.read(never, later)
    assert touched is not None and touched.expires == later


def test_purge_expired_deletes_in_batches(
    store: PostgresStore, clock: Clock, postgres_dsn: str, table: str
) -> None:
    store.setup()
    past = clock.now - timedelta(seconds=1)
    raw(
        postgres_dsn,
        f"INSERT INTO {table} SELECT md5(i::text), '{{}}', %s FROM generate_series(1, 2500) i",
        past,
    )
    live = store.create({"keep": 1}, clock.now + timedelta(hours=1))
    forever = store.create({"keep": 2}, None)
    assert store.purge_expired() == 2500
    assert store.purge_expired() == 0
    assert sorted(id for id, _ in store.scan()) == sorted([live, forever])


def test_scan_pages_through_live_records(store: PostgresStore) -> None:
    ids = {store.create({"n": n}, None) for n in range(3)}
    assert {id for id, record in store.scan()} == ids


def test_write_many_upserts_in_batches_and_counts_live_rows(
    store: PostgresStore, clock: Clock, postgres_dsn: str, table: str
) -> None:
    later = clock.now + timedelta(hours=1)
    ids = [store.new_id() for _ in range(2345)]  # more than two batches, from a generator
    assert store.write_many((id, Record({"n": n, "f": 1e300}, later)) for n, id in enumerate(ids)) == 2345
    assert store.count() == 2345 and store.cheap_count
    assert store.read(ids[7], None) == Record({"n": 7, "f": 1e300}, later)
    assert (
        store.write_many([(ids[0], Record({"n": "again"}, None)), (ids[0], Record({"n": "last"}, None))]) == 2
    )
    assert store.read(ids[0], None) == Record({"n": "last"}, None)  # one id twice in a batch: the last wins
    clock.now = later + timedelta(seconds=1)
    assert store.count() == 1


def test_write_without_replace_takes_over_only_expired_rows(store: PostgresStore, clock: Clock) -> None:
    live, dead = store.new_id(), store.new_id()
    store.write(live, {"v": "live"}, clock.now + timedelta(hours=1))
    store.write(dead, {"v": "dead"}, clock.now + timedelta(seconds=5))
    clock.now += timedelta(seconds=10)
    batch = [(live, Record({"v": "new"}, None)), (dead, Record({"v": "new"}, None))]
    assert store.write_many(batch, replace=False) == 1
    assert store.read(live, None).data == {"v": "live"}
    assert store.read(dead, None) == Record({"v": "new"}, None)


def test_write_refuses_nul_before_writing_anything(store: PostgresStore) -> None:
    good, bad = store.new_id(), store.new_id()
    with pytest.raises(SessionStoreError, match="U\\+0000"):
        store.write_many([(good, Record({"ok": 1})), (bad, Record({"text": "a\x00b"}))])
    assert store.read(good, None) is None


# -- table and setup -------------------------------------------------------------------------


def test_table_is_created_on_first_use_with_an_expiry_index(
    store: PostgresStore, postgres_dsn: str, table: str
) -> None:
    store.create({"a": 1}, None)
    columns = raw(
        postgres_dsn,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
        "ORDER BY ordinal_position",
        table,
    )
    assert columns == [("id", "text"), ("data", "jsonb"), ("expires", "timestamp with time zone")]
    indexes = raw(postgres_dsn, "SELECT indexdef FROM pg_indexes WHERE tablename = %s", table)
    assert any("(expires)" in row[0] for row in indexes)
    store.setup()  # idempotent


def test_schema_qualified_table(postgres_dsn: str, table: str) -> None:
    raw(postgres_dsn, f"CREATE SCHEMA {table}")
    storage = create_postgres_session_storage(dsn=postgres_dsn, table=f"{table}.sessions", cookie=COOKIE)
    try:
        session = storage.get_session(None)
        session["a"] = 1
        header = storage.commit_session(session)
        assert storage.get_session(header.split(";")[0])["a"] == 1
    finally:
        storage.close()
    assert raw(postgres_dsn, f"SELECT count(*) FROM {table}.sessions") == [(1,)]


@pytest.mark.parametrize("name", ["drop table x", "a.b.c", "", "1abc", "x" * 64, 'q"uote'])
def test_bad_table_names_are_refused(postgres_dsn: str, name: str) -> None:
    with pytest.raises(ConfigurationError, match="not a plain SQL identifier"):
        PostgresStore(dsn=postgres_dsn, table=name)


def test_without_create_table_a_missing_table_is_a_store_error(postgres_dsn: str, table: str) -> None:
    store = PostgresStore(dsn=postgres_dsn, table=table, create_table=False)
    try:
        with pytest.raises(SessionStoreError, match=table) as info:
            store.read("0" * 32, None)
        assert not isinstance(info.value, StoreUnavailableError)
        assert str(info.value).startswith(f"PostgreSQL (table {table!r}): relation")
        assert isinstance(info.value.__cause__, psycopg.errors.UndefinedTable)
        store.setup()
        assert store.read("0" * 32, None) is None
    finally:
        store.close()


def test_corrupt_row_is_treated_as_missing(
    store: PostgresStore, postgres_dsn: str, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    id = store.create({"a": 1}, None)
    raw(postgres_dsn, f"UPDATE {table} SET data = '[1, 2]' WHERE id = %s", id)
    with caplog.at_level(logging.WARNING, logger="websession"):
        assert store.read(id, None) is None
    assert "postgres record" in caplog.text


# -- pools and doors -------------------------------------------------------------------------


def test_no_connection_settings_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="dsn="):
        PostgresStore()


def test_sync_pool_only_gives_a_clear_error_on_the_async_door(postgres_dsn: str, table: str) -> None:
    pool = ConnectionPool(postgres_dsn, min_size=1, open=True, kwargs={"autocommit": True})
    try:
        storage = create_postgres_session_storage(pool=pool, table=table, cookie=COOKIE)
        session = storage.get_session(None)
        session["a"] = 1
        header = storage.commit_session(session).split(";")[0]
        assert storage.get_session(header)["a"] == 1
        with pytest.raises(ConfigurationError, match="async_pool="):
            asyncio.run(storage.aget_session(header))
        storage.close()
        assert not pool.closed  # a pool the caller passed in stays the caller's
    finally:
        pool.close()


def test_async_pool_only_gives_a_clear_error_on_the_sync_door(postgres_dsn: str, table: str) -> None:
    async def main() -> None:
        pool = AsyncConnectionPool(postgres_dsn, min_size=1, open=False, kwargs={"autocommit": True})
        await pool.open()
        try:
            storage = create_postgres_session_storage(async_pool=pool, table=table, cookie=COOKIE)
            session = await storage.aget_session(None)
            session["a"] = 1
            header = (await storage.acommit_session(session)).split(";")[0]
            assert (await storage.aget_session(header))["a"] == 1
            with pytest.raises(ConfigurationError, match="pool="):
                storage.get_session(header)
            await storage.aclose()
            assert not pool.closed
        finally:
            await pool.close()

    asyncio.run(main())


def test_unreachable_server_is_store_unavailable() -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=1"
    store = PostgresStore(dsn=dsn, pool_options={"timeout": 0.5})
    try:
        with pytest.raises(StoreUnavailableError) as info:
            store.read("0" * 32, None)
        assert info.value.__cause__ is not None
        assert str(info.value).startswith("PostgreSQL (table 'websession_sessions'): ")
    finally:
        store.close()

    async def main() -> None:
        other = PostgresStore(dsn=dsn, pool_options={"timeout": 0.5})
        try:
            with pytest.raises(StoreUnavailableError):
                await other.aread("0" * 32, None)
        finally:
            await other.aclose()

    asyncio.run(main())


# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_url(postgres_dsn: str, table: str, scheme: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(postgres_dsn)
    url = (
        f"{scheme}://{params['user']}@{params['host']}:{params['port']}/{params['dbname']}"
        f"?table={table}&connect_timeout=3&max_size=3&ttl=60"
    )
    storage = open_store(url, secrets=["k"])
    try:
        store = storage.store
        assert isinstance(store, PostgresStore)
        assert store.table == table and store.default_ttl == 60
        assert store.pool_options["max_size"] == 3
        assert store.dsn is not None and "connect_timeout=3" in store.dsn and "table" not in store.dsn
        session = storage.get_session(None)
        session["n"] = 1
        header = storage.commit_session(session).split(";")[0]
        assert storage.get_session(header)["n"] == 1
    finally:
        storage.close()


def test_open_store_rejects_unknown_keyword(postgres_dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="does not take: colour"):
        open_store("postgresql://postgres@127.0.0.1/x", secrets=["k"], colour="blue")


def test_url_shared_options_are_websessions_and_the_rest_goes_to_libpq() -> None:
    storage = open_store(
        "postgresql://app@db.internal/app?sslmode=disable&codec=tagged&absolute_timeout=600"
        "&rolling=false&save_uninitialized=true&ttl=none&pool_timeout=2&min_size=0&touch_interval=5",
        secrets=["k"],
    )
    store = storage.store
    assert isinstance(store, PostgresStore)  # no connection yet: pools open on first use
    assert store.dsn == "postgresql://app@db.internal/app?sslmode=disable"
    assert storage.absolute_timeout == timedelta(seconds=600)
    assert not storage.rolling and storage.save_uninitialized
    assert type(storage.codec).__name__ == "TaggedJSON"
    assert store.default_ttl is None and not store.explicit_ttl
    assert store.pool_options == {"min_size": 0, "max_size": 10, "timeout": 2.0}
    assert store.touch_interval == 5.0


@pytest.mark.parametrize(
    ("options", "default_ttl", "explicit"),
    [
        ({}, None, False),
        ({"ttl": 60}, 60.0, True),
        ({"default_ttl": 60}, 60.0, True),
        ({"ttl": None}, None, False),
    ],
)
def test_factory_ttl_spellings(options: dict, default_ttl: float | None, explicit: bool) -> None:
    storage = create_postgres_session_storage(
        dsn="postgresql://app@db.internal/app", cookie=COOKIE, **options
    )
    assert (storage.store.default_ttl, storage.store.explicit_ttl) == (default_ttl, explicit)


def test_factory_refuses_unknown_keywords() -> None:
    with pytest.raises(TypeError, match=r"create_postgres_session_storage\(\) got .* 'tll'"):
        create_postgres_session_storage(dsn="postgresql://app@db.internal/app", tll=60)
