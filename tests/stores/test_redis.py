"""The Redis store beyond the conformance suite: round trips counted by the server, fidelity of
untouched data, the hash layout's rules, the two doors, URLs, Cluster, Sentinel and failures."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.sentinel import Sentinel

from tests.servers.redis import RedisServer, free_port
from tests.timing import Stopwatch
from websession import (
    ConfigurationError,
    SessionStoreError,
    StoreUnavailableError,
    create_cookie,
    create_redis_session_storage,
    open_store,
)
from websession.changes import Changes
from websession.stores.base import Record, utcnow
from websession.stores.redis import RedisStore, redis_url

SECRET = ["s3cret"]

FIDELITY = {
    "empty_list": [],
    "empty_dict": {},
    "big_int": 2**63 - 1,
    "float": 0.1 + 0.2,
    "text": "ü€😀 naïve 漢字",
    "nested": {"a": [], "b": {}, "c": [2**63 - 1]},
}


def cookie_header(set_cookie: str | None) -> str:
    assert set_cookie is not None
    return set_cookie.split(";")[0]


def make(url: str, prefix: str = "t:", **options: Any) -> Any:
    options.setdefault("cookie", create_cookie("__session", secrets=SECRET, max_age=3600))
    return create_redis_session_storage(url=url, prefix=prefix, **options)


# -- round trips, counted by the server with MONITOR ------------------------------------------

#: Sent once when redis-py opens a connection, not per request.
HANDSHAKE = ("HELLO", "CLIENT", "AUTH", "SELECT", "PING")


class Monitor:
    """Records every command the server receives from clients (not the ones scripts run)."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.client = server.client()
        self.monitor = self.client.monitor()

    def __enter__(self) -> Monitor:
        self.monitor.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.monitor.__exit__(None, None, None)
        self.client.close()

    def commands(self) -> list[str]:
        """The client commands received since the last call (MONITOR buffers them for us)."""
        marker = f"monitor-marker-{uuid.uuid4().hex}"
        other = self.server.client()
        other.echo(marker)
        other.close()
        seen: list[str] = []
        while True:
            event = self.monitor.next_command()
            command = event["command"]
            if marker in command:
                return seen
            if event["client_type"] != "lua" and not command.startswith(HANDSHAKE):
                seen.append(command.split(" ")[0].upper())


@pytest.fixture
def monitored(private_redis: RedisServer) -> Iterator[Monitor]:
    with Monitor(private_redis) as monitor:
        yield monitor


def run_sync_requests(storage: Any) -> Iterator[None]:
    """Four requests; the generator yields between them so the test can count each."""
    session = storage.get_session(None)
    assert storage.commit_session(session) is None
    yield None  # no cookie
    session = storage.get_session(None)
    session["user"] = 1
    header = cookie_header(storage.commit_session(session))
    yield None  # created
    session = storage.get_session(header)
    assert session["user"] == 1
    storage.commit_session(session)
    yield None  # unchanged
    session = storage.get_session(header)
    session["cart"] = [1]
    storage.commit_session(session)
    yield None  # changed


async def run_async_requests(storage: Any, checkpoint: Callable[[], None]) -> None:
    session = await storage.aget_session(None)
    assert await storage.acommit_session(session) is None
    checkpoint()
    session = await storage.aget_session(None)
    session["user"] = 1
    header = cookie_header(await storage.acommit_session(session))
    checkpoint()
    session = await storage.aget_session(header)
    assert session["user"] == 1
    await storage.acommit_session(session)
    checkpoint()
    session = await storage.aget_session(header)
    session["cart"] = [1]
    await storage.acommit_session(session)
    checkpoint()


EXPECTED = {
    "string": [[], ["SET"], ["GETEX"], ["GETEX", "EVALSHA"]],
    "hash": [[], ["EVALSHA"], ["EVALSHA"], ["EVALSHA", "EVALSHA"]],
}


def warm_up(storage: Any, door: str) -> None:
    """Open the connection and load the scripts, so only per-request commands are counted."""
    if door == "sync":
        list(run_sync_requests(storage))
    else:
        asyncio.run(run_async_requests(storage, lambda: None))


@pytest.mark.parametrize("layout", ["string", "hash"])
def test_round_trips_sync(private_redis: RedisServer, monitored: Monitor, layout: str) -> None:
    storage = make(private_redis.url, layout=layout)
    warm_up(storage, "sync")
    monitored.commands()
    counts = []
    for _ in run_sync_requests(storage):
        counts.append(monitored.commands())
    assert counts == EXPECTED[layout]
    storage.close()


@pytest.mark.parametrize("layout", ["string", "hash"])
def test_round_trips_async(private_redis: RedisServer, monitored: Monitor, layout: str) -> None:
    storage = make(private_redis.url, layout=layout)

    async def main() -> list[list[str]]:
        await run_async_requests(storage, lambda: None)  # warm up on this loop's client
        monitored.commands()
        counts: list[list[str]] = []
        await run_async_requests(storage, lambda: counts.append(monitored.commands()))
        await storage.aclose()
        return counts

    assert asyncio.run(main()) == EXPECTED[layout]


def test_not_rolling_reads_with_plain_get(private_redis: RedisServer, monitored: Monitor) -> None:
    storage = make(private_redis.url, rolling=False)
    session = storage.get_session(None)
    session["a"] = 1
    header = cookie_header(storage.commit_session(session))
    monitored.commands()
    assert storage.commit_session(storage.get_session(header)) is None
    assert monitored.commands() == ["GET"]


def test_evalsha_falls_back_to_eval_after_noscript(private_redis: RedisServer, monitored: Monitor) -> None:
    storage = make(private_redis.url)
    session = storage.get_session(None)
    session["n"] = 0
    header = cookie_header(storage.commit_session(session))
    private_redis.client().script_flush()
    monitored.commands()
    for n in (1, 2):
        session = storage.get_session(header)
        session["n"] = n
        storage.commit_session(session)
    # The first update finds no cached script and sends it; EVAL caches it for the second.
    assert monitored.commands() == ["GETEX", "EVALSHA", "EVAL", "GETEX", "EVALSHA"]
    assert storage.get_session(header)["n"] == 2


def test_a_lifetime_change_alone_moves_the_expiry_without_rewriting_data(
    private_redis: RedisServer, monitored: Monitor
) -> None:
    storage = make(private_redis.url, rolling=False)
    session = storage.get_session(None)
    session["a"] = [1, 2]
    header = cookie_header(storage.commit_session(session))
    client = private_redis.client()
    key = f"t:{session.id}"
    before = client.get(key)
    session = storage.get_session(header)
    monitored.commands()
    assert storage.commit_session(session, max_age=86400) is not None
    assert monitored.commands() == ["EXPIRE"]
    assert client.get(key) == before
    assert 3600 < client.ttl(key) <= 86400
    # The same on a session that was deleted meanwhile: nothing comes back.
    session = storage.get_session(header)
    client.delete(key)
    set_cookie = storage.commit_session(session, max_age=86400)
    assert set_cookie is not None and "Expires=Thu, 01 Jan 1970" in set_cookie
    assert client.exists(key) == 0


# -- fidelity of untouched data ---------------------------------------------------------------


@pytest.mark.parametrize("layout", ["string", "hash"])
@pytest.mark.parametrize("door", ["sync", "async"])
def test_untouched_values_survive_repeated_updates(
    redis_url: str, redis_prefix: str, layout: str, door: str
) -> None:
    storage = make(redis_url, redis_prefix, layout=layout)

    async def requests() -> dict[str, Any]:
        session = await storage.aget_session(None)
        session.update(FIDELITY)
        header = cookie_header(await storage.acommit_session(session))
        for value in ["a string", 7, [], {"x": None}, 2.5, True]:
            session = await storage.aget_session(header)
            session["other"] = value
            await storage.acommit_session(session)
        result = dict(await storage.aget_session(header))
        await storage.aclose()
        return result

    if door == "async":
        data = asyncio.run(requests())
    else:
        session = storage.get_session(None)
        session.update(FIDELITY)
        header = cookie_header(storage.commit_session(session))
        for value in ["a string", 7, [], {"x": None}, 2.5, True]:
            session = storage.get_session(header)
            session["other"] = value
            storage.commit_session(session)
        data = dict(storage.get_session(header))
        storage.close()
    assert data.pop("other") is True
    assert data == FIDELITY
    for key, value in FIDELITY.items():
        assert type(data[key]) is type(value), key
    assert repr(data["float"]) == "0.30000000000000004"


def test_stored_bytes_of_untouched_values_never_change(redis_url: str, redis_prefix: str) -> None:
    storage = make(redis_url, redis_prefix)
    session = storage.get_session(None)
    session.update(FIDELITY)
    header = cookie_header(storage.commit_session(session))
    client = redis.Redis.from_url(redis_url)
    raw = client.get(f"{redis_prefix}{session.id}")
    assert raw.startswith(b'{"empty_list":[],"empty_dict":{},"big_int":9223372036854775807,')
    session = storage.get_session(header)
    session["counter"] = 1
    storage.commit_session(session)
    assert client.get(f"{redis_prefix}{session.id}") == raw[:-1] + b',"counter":1}'
    client.close()


# -- compare-and-set against what is stored now ------------------------------------------------


def test_update_applies_changes_to_a_record_changed_since_it_was_read(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore(url=redis_url, prefix=redis_prefix)
    id = store.create({"a": 1}, utcnow() + timedelta(seconds=60))
    seen = store.read(id, None)
    assert seen is not None
    client = redis.Redis.from_url(redis_url)
    client.set(f"{redis_prefix}{id}", b'{"a":1,"other":[]}', keepttl=True)
    record = store.update(id, Changes({"b": 2}), utcnow() + timedelta(seconds=60), seen)
    assert record is not None and record.data == {"a": 1, "other": [], "b": 2}
    assert client.get(f"{redis_prefix}{id}") == b'{"a":1,"other":[],"b":2}'
    client.close()
    store.close()


def test_update_of_a_deleted_record_returns_none_and_writes_nothing(
    redis_url: str, redis_prefix: str
) -> None:
    for layout in ("string", "hash"):
        store = RedisStore(url=redis_url, prefix=redis_prefix, layout=layout)  # type: ignore[arg-type]
        id = store.create({"a": 1}, None)
        seen = store.read(id, None)
        assert seen is not None
        store.delete(id)
        assert store.update(id, Changes({"b": 2}, frozenset({"a"})), None, seen) is None
        assert store.update(id, Changes(), utcnow() + timedelta(seconds=60), seen) is None
        client = redis.Redis.from_url(redis_url)
        assert client.exists(f"{redis_prefix}{id}") == 0, layout
        client.close()
        store.close()


def test_update_from_a_record_this_process_created_needs_no_read(redis_url: str, redis_prefix: str) -> None:
    """A session committed twice in one process: the second commit digests the encoded data."""
    storage = make(redis_url, redis_prefix)
    session = storage.get_session(None)
    session["a"] = []
    storage.commit_session(session)
    session["b"] = 1
    storage.commit_session(session)
    client = redis.Redis.from_url(redis_url)
    assert client.get(f"{redis_prefix}{session.id}") == b'{"a":[],"b":1}'
    client.close()


def test_corrupt_records_are_treated_as_missing(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)
    for layout, write in (
        ("string", lambda key: client.set(key, b"{not json")),
        ("string", lambda key: client.set(key, b"[1, 2]")),
        ("hash", lambda key: client.hset(key, mapping={"a": b"1", "b": b"{nope"})),
    ):
        store = RedisStore(url=redis_url, prefix=redis_prefix, layout=layout)  # type: ignore[arg-type]
        id = store.new_id()
        write(f"{redis_prefix}{id}")
        with caplog.at_level(logging.WARNING, logger="websession"):
            assert store.read(id, None) is None
        assert "unreadable" in caplog.text
        caplog.clear()
        store.close()
    client.close()


def test_a_key_of_the_wrong_type_is_an_unreadable_record(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 5: a record of the wrong type gives a fresh session and a warning, never a 500.
    store = RedisStore(url=redis_url, prefix=redis_prefix)
    id = store.new_id()
    client = redis.Redis.from_url(redis_url)
    client.hset(f"{redis_prefix}{id}", "a", "1")
    caplog.set_level("WARNING", logger="websession")
    assert store.read(id, utcnow() + timedelta(seconds=60)) is None
    assert store.update(id, Changes({"b": 2}), None, Record({"a": 1}, None, b'{"a":1}')) is None
    assert "WRONGTYPE" in caplog.text
    assert client.hgetall(f"{redis_prefix}{id}") == {b"a": b"1"}  # left as it was
    client.close()
    store.close()


# -- the hash layout ------------------------------------------------------------------------------


def test_hash_layout_stores_one_json_field_per_key(redis_url: str, redis_prefix: str) -> None:
    storage = make(redis_url, redis_prefix, layout="hash")
    session = storage.get_session(None)
    session.update(user="ada", cart=[1], n=2**63 - 1)
    session.flash("notice", "hi")
    header = cookie_header(storage.commit_session(session))
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_prefix}{session.id}"
    assert client.hgetall(key) == {
        b"user": b'"ada"',
        b"cart": b"[1]",
        b"n": b"9223372036854775807",
        b"__flash_notice__": b'"hi"',
        b"": b"",
    }
    assert 3500 < client.ttl(key) <= 3600
    session = storage.get_session(header)
    assert session.get("notice") == "hi"
    del session["cart"]
    storage.commit_session(session)
    assert client.hgetall(key) == {b"user": b'"ada"', b"n": b"9223372036854775807", b"": b""}
    client.close()


def test_hash_layout_keeps_a_session_whose_keys_were_all_removed(redis_url: str, redis_prefix: str) -> None:
    storage = make(redis_url, redis_prefix, layout="hash")
    session = storage.get_session(None)
    session[""] = "the empty key is a key like any other"
    session["a"] = 1
    header = cookie_header(storage.commit_session(session))
    assert dict(storage.get_session(header)) == {"": "the empty key is a key like any other", "a": 1}
    session = storage.get_session(header)
    session.clear()
    storage.commit_session(session)
    again = storage.get_session(header)
    assert not again.is_new and dict(again) == {}


def test_hash_layout_sets_and_removes_only_changed_fields(redis_url: str, redis_prefix: str) -> None:
    storage = make(redis_url, redis_prefix, layout="hash")
    session = storage.get_session(None)
    session.update(a=1, b=2)
    header = cookie_header(storage.commit_session(session))
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_prefix}{session.id}"
    session = storage.get_session(header)
    client.hset(key, "written-elsewhere", b"[]")  # another request, after our read
    session["a"] = 10
    del session["b"]
    storage.commit_session(session)
    assert dict(storage.get_session(header)) == {"a": 10, "written-elsewhere": []}
    client.close()


# -- remix-v3 records --------------------------------------------------------------------------------


def test_v3_records_are_values_and_flash_under_uuid_ids(redis_url: str, redis_prefix: str) -> None:
    cookie = create_cookie("__session", secrets=SECRET, max_age=3600, format="remix-v3")
    storage = make(redis_url, redis_prefix, cookie=cookie, format="remix-v3")
    session = storage.get_session(None)
    session["user"] = "ü"
    session.flash("notice", "Saved")
    set_cookie = storage.commit_session(session)
    assert session.id is not None and str(uuid.UUID(session.id)) == session.id
    assert set_cookie is not None and "%" not in set_cookie
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_prefix}{session.id}"
    assert client.get(key) == '[{"user":"ü"},{"notice":"Saved"}]'.encode()
    session = storage.get_session(cookie_header(set_cookie))
    assert session.get("notice") == "Saved"
    storage.commit_session(session)
    assert client.get(key) == '[{"user":"ü"},{}]'.encode()
    client.close()


def test_v3_needs_a_v3_cookie_and_the_string_layout(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="format='remix-v3'"):
        make(redis_url, format="remix-v3")  # the default cookie of make() is a remix one
    storage = create_redis_session_storage(
        url=redis_url, cookie={"name": "s", "secrets": SECRET}, format="remix-v3"
    )
    assert storage.cookie.format == "remix-v3"
    with pytest.raises(ConfigurationError, match="layout='string'"):
        create_redis_session_storage(
            url=redis_url, cookie={"name": "s", "secrets": SECRET}, format="remix-v3", layout="hash"
        )


# -- the two doors, clients, configuration -------------------------------------------------------


def test_a_sync_client_serves_the_sync_door_only(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    storage = create_redis_session_storage(
        client=client, prefix=redis_prefix, cookie=create_cookie("s", secrets=SECRET)
    )
    session = storage.get_session(None)
    session["a"] = 1
    header = cookie_header(storage.commit_session(session))
    assert storage.get_session(header)["a"] == 1
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio\.Redis"):
        asyncio.run(storage.aget_session(header))
    storage.close()
    assert client.ping()  # a client handed in is not ours to close
    client.close()


def test_an_async_client_serves_the_async_door_only(redis_url: str, redis_prefix: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        storage = create_redis_session_storage(
            client=client, prefix=redis_prefix, cookie=create_cookie("s", secrets=SECRET)
        )
        session = await storage.aget_session(None)
        session["a"] = 1
        header = cookie_header(await storage.acommit_session(session))
        assert (await storage.aget_session(header))["a"] == 1
        with pytest.raises(ConfigurationError, match=r"redis\.Redis"):
            storage.get_session(header)
        await storage.aclose()
        assert await client.ping()
        await client.aclose()

    asyncio.run(main())


def test_one_url_storage_serves_both_doors_and_several_event_loops(redis_url: str, redis_prefix: str) -> None:
    storage = make(redis_url, redis_prefix)
    session = storage.get_session(None)
    session["n"] = 0
    header = cookie_header(storage.commit_session(session))

    async def bump() -> int:
        session = await storage.aget_session(header)
        session["n"] += 1
        await storage.acommit_session(session)
        return int(session["n"])

    assert asyncio.run(bump()) == 1
    assert asyncio.run(bump()) == 2  # a new loop gets a client of its own
    assert storage.get_session(header)["n"] == 2
    storage.close()


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="exactly one"):
        RedisStore()
    with pytest.raises(ConfigurationError, match="exactly one"):
        RedisStore(url="redis://localhost", client=redis.Redis())
    with pytest.raises(ConfigurationError, match="format"):
        RedisStore(url="redis://localhost", format="remix-v4")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="layout"):
        RedisStore(url="redis://localhost", layout="list")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ttl"):
        RedisStore(url="redis://localhost", default_ttl=0)
    with pytest.raises(ConfigurationError, match="not a redis URL"):
        redis_url("http://user:password@localhost")
    with pytest.raises(ConfigurationError) as raised:
        redis_url("memcache://user:password@localhost")
    assert "password" not in str(raised.value)


def test_hiredis_parses_replies_when_installed(redis_url: str) -> None:
    pytest.importorskip("hiredis", reason="hiredis is an optional speed-up")
    from redis._parsers import _AsyncHiredisParser, _HiredisParser

    store = RedisStore(url=redis_url)
    client = store._sync_client()
    connection = client.connection_pool.get_connection()
    try:
        assert isinstance(connection._parser, _HiredisParser)
    finally:
        client.connection_pool.release(connection)
    store.close()

    async def parser() -> Any:
        client = store._async_client()
        connection = await client.connection_pool.get_connection()
        try:
            return connection._parser
        finally:
            await client.connection_pool.release(connection)
            await store.aclose()

    assert isinstance(asyncio.run(parser()), _AsyncHiredisParser)


def test_scan_lists_only_sessions_under_the_prefix(redis_url: str, redis_prefix: str) -> None:
    prefix = f"{redis_prefix}[glob]*:"
    store = RedisStore(url=redis_url, prefix=prefix)
    ids = {store.create({"n": n}, utcnow() + timedelta(seconds=60)) for n in range(3)}
    client = redis.Redis.from_url(redis_url)
    client.set(f"{redis_prefix}g:{store.new_id()}", b"{}")  # matched by an unescaped glob
    client.set(f"{prefix}not-an-id", b"{}")
    client.close()
    found = dict(store.scan())
    assert set(found) == ids
    record = next(iter(found.values()))
    assert record.expires is not None and record.expires > utcnow()
    store.close()


# -- maintenance: scan, count, peek, write, write_many -----------------------------------------


def test_maintenance_sends_scan_match_never_keys(private_redis: RedisServer, monitored: Monitor) -> None:
    store = RedisStore(url=private_redis.url, prefix="m:")
    monitored.commands()
    later = utcnow() + timedelta(hours=1)
    assert store.write_many((store.new_id(), Record({"n": n}, later)) for n in range(20)) == 20
    assert set(monitored.commands()) == {"SET"}
    assert store.count() == 20
    assert set(monitored.commands()) == {"SCAN"}
    assert len(dict(store.scan())) == 20
    assert set(monitored.commands()) == {"SCAN", "GET", "PTTL"}
    hashes = RedisStore(url=private_redis.url, prefix="h:", layout="hash")
    assert hashes.write_many([(hashes.new_id(), Record({"n": 1}, later))]) == 1
    assert set(monitored.commands()) == {"EVAL"}
    store.close()
    hashes.close()


def test_write_keeps_lifetimes_to_the_millisecond(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(url=redis_url, prefix=redis_prefix)
    client = redis.Redis.from_url(redis_url)
    short, long = store.new_id(), store.new_id()
    watch = Stopwatch()
    assert store.write(short, {"n": 1}, utcnow() + timedelta(milliseconds=1500))
    assert store.write(long, {"n": 2}, utcnow() + timedelta(days=90))
    assert client.pttl(redis_prefix + short) <= 1500  # EX would round up to 2 s
    assert watch.ttl_ok(client.pttl(redis_prefix + short) / 1000, 1.5, rounding=0.002)
    assert watch.ttl_ok(client.pttl(redis_prefix + long) / 1000, 90 * 86400, rounding=0.002)
    assert store.write(short, {"n": 3}, None)
    assert client.pttl(redis_prefix + short) == -1  # replaced: no expiry any more
    client.close()
    store.close()


def test_write_many_streams_batches_of_any_length(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(url=redis_url, prefix=redis_prefix)
    later = utcnow() + timedelta(minutes=5)
    records = ((store.new_id(), Record({"n": n}, later)) for n in range(1234))  # > 2 pipelines
    assert store.write_many(records) == 1234
    assert store.count() == 1234
    store.close()


def test_hash_write_replaces_the_whole_hash(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(url=redis_url, prefix=redis_prefix, layout="hash")
    client = redis.Redis.from_url(redis_url)
    id, empty = store.new_id(), store.new_id()
    assert store.write(id, {"a": 1, "b": [2]}, None)
    assert store.write(id, {"c": {}}, utcnow() + timedelta(minutes=1))
    assert client.hgetall(redis_prefix + id) == {b"c": b"{}", b"": b""}  # a and b are gone
    assert 0 < client.pttl(redis_prefix + id) <= 60_000
    assert store.write(id, {"d": 4}, None, replace=False) is False
    assert store.peek(id).data == {"c": {}}
    assert store.write(empty, {}, None)
    assert store.peek(empty) == Record({}, None)  # the marker field keeps an empty hash alive
    client.close()
    store.close()


@pytest.mark.parametrize("door", ["sync", "async"])
def test_any_other_command_error_is_a_store_error_on_both_doors(
    private_redis: RedisServer, redis_prefix: str, door: str
) -> None:
    # A take of a key of another type answers WRONGTYPE (only reads and updates take that for
    # a missing session); a server out of memory refuses writes with OOM.
    store = RedisStore(url=private_redis.url, prefix=redis_prefix)
    id = store.new_id()
    client = redis.Redis.from_url(private_redis.url)
    client.hset(f"{redis_prefix}{id}", "a", "1")

    def call(verb: str, *args: Any) -> Any:
        if door == "sync":
            return getattr(store, verb)(*args)
        return asyncio.run(getattr(store, "a" + verb)(*args))

    def fails(verb: str, said: str, *args: Any) -> None:
        with pytest.raises(SessionStoreError, match=f"redis store failed during {verb}: {said}") as caught:
            call(verb, *args)
        assert not isinstance(caught.value, (redis.exceptions.RedisError, StoreUnavailableError))
        assert isinstance(caught.value.__cause__, redis.exceptions.ResponseError)

    fails("take", "WRONGTYPE", id)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    try:
        fails("create", "command not allowed when used memory", {"a": 1}, None)
    finally:
        client.config_set("maxmemory", 0)
        client.close()
        store.close()


def test_remix_v3_write_stores_values_and_flash(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(url=redis_url, prefix=redis_prefix, format="remix-v3")
    id = store.new_id()
    assert store.write(id, {"user": 1, "__flash_notice__": "Saved"}, None)
    client = redis.Redis.from_url(redis_url)
    assert client.get(redis_prefix + id) == b'[{"user":1},{"notice":"Saved"}]'
    client.close()
    assert dict(store.scan())[id].data == {"user": 1, "__flash_notice__": "Saved"}
    store.close()


def test_scan_skips_a_key_of_another_type(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(url=redis_url, prefix=redis_prefix)
    good, odd = store.new_id(), store.new_id()
    store.write(good, {"n": 1}, None)
    client = redis.Redis.from_url(redis_url)
    client.rpush(redis_prefix + odd, "not a session")
    client.close()
    with caplog.at_level(logging.WARNING, logger="websession"):
        assert set(dict(store.scan())) == {good}
        assert store.peek(odd) is None
    assert "unreadable" in caplog.text and "WRONGTYPE" in caplog.text
    store.close()


@pytest.mark.parametrize("layout", ["string", "hash"])
def test_cluster_scan_count_and_write_many_cover_every_master(redis_cluster_url: str, layout: Any) -> None:
    prefix = f"maintenance:{uuid.uuid4().hex[:8]}:"
    store = RedisStore(url=redis_cluster_url, prefix=prefix, layout=layout)
    later = utcnow() + timedelta(minutes=5)
    ids = [store.new_id() for _ in range(300)]
    assert store.write_many((id, Record({"id": id}, later)) for id in ids) == 300
    assert store.count() == 300
    found = dict(store.scan())
    assert set(found) == set(ids) and all(found[id].data == {"id": id} for id in ids)
    client = redis.cluster.RedisCluster.from_url(redis_cluster_url.replace("redis+cluster", "redis"))
    try:
        per_master = [
            len(client.scan(match=f"{prefix}*", count=1000, target_nodes=node)[1])
            for node in client.get_primaries()
        ]
        assert len(per_master) == 3 and all(per_master), per_master  # the keys span every master
        for id in ids:
            client.delete(prefix + id)
    finally:
        client.close()
        store.close()


# -- URLs ------------------------------------------------------------------------------------------


def test_open_store_reads_the_query(redis_url: str, redis_prefix: str) -> None:
    storage = open_store(
        f"{redis_url}?prefix={redis_prefix}&ttl=60&layout=hash&timeout=2", secrets=SECRET, max_age=None
    )
    store = storage.store
    assert (store.prefix, store.default_ttl, store.layout, store.timeout) == (redis_prefix, 60, "hash", 2)
    session = storage.get_session(None)
    session["a"] = 1
    watch = Stopwatch()
    storage.commit_session(session)
    client = redis.Redis.from_url(redis_url)
    # The cookie has no lifetime: ttl is the record's (milliseconds, so no rounding to allow).
    assert watch.ttl_ok(client.pttl(f"{redis_prefix}{session.id}") / 1000, 60, rounding=0.002)
    client.close()
    storage.close()
    v3 = open_store(f"{redis_url}?format=remix-v3&ttl=none", secrets=SECRET)
    assert v3.cookie.format == "remix-v3" and v3.store.default_ttl is None
    with pytest.raises(ConfigurationError, match="does not take: colour"):
        open_store(f"{redis_url}?colour=blue", secrets=SECRET)


def test_open_store_cluster_and_tls_urls_pick_the_right_clients(redis_cluster_url: str) -> None:
    storage = open_store(redis_cluster_url, secrets=SECRET)
    assert isinstance(storage.store._sync_client(), redis.cluster.RedisCluster)

    async def async_client() -> Any:
        client = storage.store._async_client()
        await storage.aclose()
        return client

    assert isinstance(asyncio.run(async_client()), redis.asyncio.cluster.RedisCluster)
    storage.close()
    assert redis_url("rediss+cluster://h:1") == ("rediss://h:1", True)


# -- Redis Cluster and Sentinel clients handed in -----------------------------------------------------


def test_cluster_clients_handed_in(redis_cluster_url: str) -> None:
    url = redis_cluster_url.replace("redis+cluster", "redis")
    cookie = create_cookie("s", secrets=SECRET)
    client = redis.cluster.RedisCluster.from_url(url)
    storage = create_redis_session_storage(client=client, cookie=cookie, prefix="handed-in:")
    headers = []
    for n in range(10):  # ten sessions: their keys land on all three masters
        session = storage.get_session(None)
        session["n"] = n
        headers.append(cookie_header(storage.commit_session(session)))
    slots = {client.keyslot(f"handed-in:{storage.get_session(h).id}") for h in headers}
    assert len({client.nodes_manager.get_node_from_slot(slot).name for slot in slots}) > 1

    async def main() -> None:
        aclient = redis.asyncio.cluster.RedisCluster.from_url(url)
        astorage = create_redis_session_storage(client=aclient, cookie=cookie, prefix="handed-in:")
        for n, header in enumerate(headers):
            session = await astorage.aget_session(header)
            assert session["n"] == n
            session["n"] = -n
            await astorage.acommit_session(session)
        await aclient.aclose()

    asyncio.run(main())
    assert [storage.get_session(h)["n"] for h in headers] == [-n for n in range(10)]
    client.close()


def test_a_sentinel_managed_client_works(private_redis: RedisServer, tmp_path: Any) -> None:
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\nsentinel monitor main 127.0.0.1 {private_redis.port} 1\n"
    )
    sentinel = subprocess.Popen(
        ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        watcher = Sentinel([("127.0.0.1", port)], socket_timeout=1)
        while True:
            try:
                watcher.discover_master("main")
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    pytest.fail("redis sentinel did not come up")
                time.sleep(0.05)
        client = watcher.master_for("main")
        storage = create_redis_session_storage(client=client, cookie=create_cookie("s", secrets=SECRET))
        session = storage.get_session(None)
        session["via"] = "sentinel"
        header = cookie_header(storage.commit_session(session))
        assert storage.get_session(header)["via"] == "sentinel"
        assert private_redis.client().exists(f"session:{session.id}") == 1
        client.close()
    finally:
        sentinel.kill()
        sentinel.wait(10)


# -- failures: refused, timeouts, restarts ---------------------------------------------------------


def test_connection_refused_is_unavailable_with_the_cause() -> None:
    storage = make(f"redis://127.0.0.1:{free_port()}/0")
    header = storage.cookie.serialize("0" * 40).split(";")[0]
    with pytest.raises(StoreUnavailableError) as raised:
        storage.get_session(header)
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    with pytest.raises(StoreUnavailableError):
        asyncio.run(storage.aget_session(header))
    session = storage.get_session(None)  # no cookie: no I/O, no error
    session["a"] = 1
    with pytest.raises(StoreUnavailableError):
        storage.commit_session(session)


def test_a_server_that_stops_answering_times_out(private_redis: RedisServer) -> None:
    storage = make(private_redis.url, timeout=0.3)
    session = storage.get_session(None)
    session["a"] = 1
    header = cookie_header(storage.commit_session(session))
    assert private_redis.process is not None
    os.kill(private_redis.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(StoreUnavailableError) as raised:
            storage.get_session(header)
        assert isinstance(raised.value.__cause__, redis.TimeoutError)
        with pytest.raises(StoreUnavailableError) as araised:
            asyncio.run(storage.aget_session(header))
        assert isinstance(araised.value.__cause__, redis.TimeoutError)
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    assert storage.get_session(header)["a"] == 1


@pytest.fixture
def durable_redis(tmp_path: Any) -> Iterator[RedisServer]:
    """A private server that keeps every write across a kill (appendfsync always)."""
    server = RedisServer(tmp_path / "durable", None, "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("door", ["sync", "async"])
@pytest.mark.parametrize("layout", ["string", "hash"])
def test_a_restart_mid_request_writes_nothing_and_the_next_request_works(
    durable_redis: RedisServer, door: str, layout: str
) -> None:
    storage = make(durable_redis.url, layout=layout)
    loop = asyncio.new_event_loop()

    def get(header: str | None) -> Any:
        if door == "sync":
            return storage.get_session(header)
        return loop.run_until_complete(storage.aget_session(header))

    def commit(session: Any) -> str | None:
        if door == "sync":
            return storage.commit_session(session)
        return loop.run_until_complete(storage.acommit_session(session))

    try:
        session = get(None)
        session.update(user=1, cart=[1])
        header = cookie_header(commit(session))
        session = get(header)  # read before the crash
        durable_redis.stop()
        session["cart"] = [1, 2]
        session["more"] = True
        with pytest.raises(StoreUnavailableError) as raised:
            commit(session)
        assert isinstance(raised.value.__cause__, redis.ConnectionError)
        with pytest.raises(StoreUnavailableError):
            get(header)
        durable_redis.start()
        # Nothing of the failed commit was written, and the stale pooled connections do not
        # fail the next request.
        session = get(header)
        assert dict(session) == {"user": 1, "cart": [1]}
        session["cart"] = [1, 2]
        commit(session)
        assert dict(get(header)) == {"user": 1, "cart": [1, 2]}
    finally:
        if door == "async":
            loop.run_until_complete(storage.aclose())
        loop.close()
        storage.close()


def test_a_restart_between_requests_is_invisible(durable_redis: RedisServer) -> None:
    storage = make(durable_redis.url)
    session = storage.get_session(None)
    session["a"] = 1
    header = cookie_header(storage.commit_session(session))
    durable_redis.stop()
    durable_redis.start()
    session = storage.get_session(header)  # the pooled connection died; one retry reconnects
    session["b"] = 2
    storage.commit_session(session)
    assert dict(storage.get_session(header)) == {"a": 1, "b": 2}


def test_store_level_record_version_is_the_raw_bytes(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(url=redis_url, prefix=redis_prefix)
    id = store.create({"a": []}, None)
    record = store.read(id, None)
    assert record == Record({"a": []}, None, b'{"a":[]}')
    store.close()


def test_a_client_that_decodes_responses_keeps_fidelity(redis_url: str, redis_prefix: str) -> None:
    for layout in ("string", "hash"):
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        storage = create_redis_session_storage(
            client=client, prefix=redis_prefix, layout=layout, cookie=create_cookie("s", secrets=SECRET)
        )
        session = storage.get_session(None)
        session.update(FIDELITY)
        header = cookie_header(storage.commit_session(session))
        for n in range(3):
            session = storage.get_session(header)
            session["n"] = n
            storage.commit_session(session)
        data = dict(storage.get_session(header))
        assert data == {**FIDELITY, "n": 2}, layout
        assert [type(data[k]) for k in FIDELITY] == [type(v) for v in FIDELITY.values()]
        client.close()


def test_open_store_refuses_an_unknown_format_as_configuration(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="remix-v4"):
        open_store(f"{redis_url}?format=remix-v4", secrets=SECRET)


# -- a busy pool: more concurrent requests than connections ------------------------------------


def test_more_concurrent_requests_than_connections_wait_for_one(redis_url: str, redis_prefix: str) -> None:
    """Held connections never go back to redis-py's pool, so the store itself must make a
    request wait for a free one; before, every request past the pool size got a 503."""
    import threading

    storage = make(redis_url, prefix=redis_prefix, max_connections=3)

    async def one(n: int) -> int:
        session = await storage.aget_session(None)
        session["n"] = n
        header = await storage.acommit_session(session)
        again = await storage.aget_session(header.split(";")[0])
        again["n"] += 1
        await storage.acommit_session(again)
        return int(again["n"])

    async def many() -> list[int]:
        return list(await asyncio.gather(*(one(n) for n in range(60))))

    assert asyncio.run(many()) == [n + 1 for n in range(60)]

    errors: list[BaseException] = []

    def sync_one(n: int) -> None:
        try:
            session = storage.get_session(None)
            session["n"] = n
            storage.commit_session(session)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sync_one, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    storage.close()


# -- ttl= is how long Redis keeps the record (the seed's definition) -----------------------------


@pytest.mark.parametrize("layout", ["string", "hash"])
def test_an_explicit_ttl_sets_the_server_ttl_even_with_a_cookie_max_age(
    redis_url: str, redis_prefix: str, layout: str
) -> None:
    storage = make(redis_url, redis_prefix, ttl=120, layout=layout)  # the cookie says 3600
    session = storage.get_session(None)
    session["a"] = 1
    header = storage.commit_session(session)
    assert "Max-Age=3600" in (header or "")
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_prefix}{session.id}"
    assert 0 < client.pttl(key) <= 120_000
    storage.get_session(cookie_header(header))  # a rolling read keeps the explicit ttl
    assert 0 < client.pttl(key) <= 120_000
    client.close()


def test_without_ttl_redis_keeps_the_record_as_long_as_the_cookie(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    for cookie, low, high in (
        (create_cookie("__session", secrets=SECRET, max_age=3600), 3_000_000, 3_600_000),
        (create_cookie("__session", secrets=SECRET), 604_000_000, 604_800_000),  # Remix's 7 days
    ):
        storage = make(redis_url, redis_prefix, cookie=cookie)
        session = storage.get_session(None)
        session["a"] = 1
        storage.commit_session(session)
        assert low < client.pttl(f"{redis_prefix}{session.id}") <= high
    client.close()


def test_the_url_ttl_option_is_explicit_and_its_absence_is_not(redis_url: str, redis_prefix: str) -> None:
    given = open_store(f"{redis_url}?prefix={redis_prefix}&ttl=120&secrets=k&max_age=3600")
    absent = open_store(f"{redis_url}?prefix={redis_prefix}&secrets=k&max_age=3600")
    assert (given.store.explicit_ttl, given.store.default_ttl) == (True, 120.0)
    assert (absent.store.explicit_ttl, absent.store.default_ttl) == (False, 604800)
    given.close()
    absent.close()
