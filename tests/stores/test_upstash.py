"""The Upstash store against the local REST server (tests/servers/upstash.py) and a real Redis:
round trips, the wire format, read-your-writes, NOSCRIPT, compare-and-set, failures, URLs.

Most tests run four ways: websession's httpx transport or the official upstash-redis client,
through the sync door or the async door."""

from __future__ import annotations

import base64
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
import upstash_redis
import upstash_redis.asyncio

from tests.conformance.harness import AsyncDoor, Browser, Door, SyncDoor
from tests.servers._processes import free_port
from tests.servers.redis import REDIS_HOST, REDIS_PORT
from tests.servers.upstash import RedisProcess, UpstashRestServer
from tests.timing import Stopwatch
from websession import (
    ConfigurationError,
    SessionStoreError,
    StoreUnavailableError,
    create_cookie,
    create_upstash_session_storage,
    open_store,
)
from websession.changes import Changes
from websession.stores.base import Record, utcnow
from websession.stores.redis_cas import CAS_SHA1
from websession.stores.upstash import UpstashCommandError, UpstashRestClient, UpstashStore

COOKIE = "__session"


@pytest.fixture(params=["sync", "async"])
def door(request: pytest.FixtureRequest) -> Door:
    return SyncDoor() if request.param == "sync" else AsyncDoor()


@pytest.fixture(params=["httpx", "sdk"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


def sdk_client(door: Door, server: UpstashRestServer, token: str | None = None) -> Any:
    settings = {"rest_retries": 0, "allow_telemetry": False}
    if door.name == "async":
        return upstash_redis.asyncio.Redis(server.url, token or server.token, **settings)
    return upstash_redis.Redis(server.url, token or server.token, **settings)


@pytest.fixture
def make(
    upstash_server: UpstashRestServer, redis_prefix: str, door: Door, transport: str
) -> Iterator[Callable[..., Any]]:
    """Build storages on the transport and door under test; all are closed afterwards."""
    made: list[tuple[Any, Any]] = []

    def build(
        server: UpstashRestServer | None = None,
        *,
        token: str | None = None,
        max_age: float | None = 3600,
        **options: Any,
    ) -> Any:
        server = server or upstash_server
        cookie = create_cookie(COOKIE, secrets=["s3cret"], max_age=max_age)
        client = None
        if transport == "httpx":
            storage = create_upstash_session_storage(
                cookie=cookie, url=server.url, token=token or server.token, prefix=redis_prefix, **options
            )
        else:
            client = sdk_client(door, server, token)
            storage = create_upstash_session_storage(
                cookie=cookie, client=client, prefix=redis_prefix, **options
            )
        made.append((storage, client))
        return storage

    yield build
    for storage, client in made:
        if isinstance(door, AsyncDoor):
            door.run(storage.aclose())
            if client is not None:
                door.run(client.close())
        else:
            storage.close()
            if client is not None:
                client.close()
    if isinstance(door, AsyncDoor):
        door.loop.close()


@pytest.fixture
def direct(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def session_id(storage: Any, browser: Browser) -> str:
    value = storage.cookie.parse(browser.header)
    assert isinstance(value, str)
    return value


def since(server: UpstashRestServer, mark: int) -> list[str]:
    return [command[0].upper() for request in server.requests[mark:] for command in request.commands]


# -- round trips and the wire format ---------------------------------------------------------------


def test_round_trips_none_one_two(make: Any, door: Door, upstash_server: UpstashRestServer) -> None:
    storage = make()
    browser = Browser(COOKIE)
    mark = len(upstash_server.requests)
    assert door.commit(storage, door.get(storage, None)) is None
    assert since(upstash_server, mark) == []  # no cookie: no request

    door.request(storage, browser, lambda s: s.set("a", 1))
    assert since(upstash_server, mark) == ["SET"]

    mark = len(upstash_server.requests)
    door.request(storage, browser)  # unchanged, rolling: the TTL moves inside the read
    assert since(upstash_server, mark) == ["GETEX"]

    mark = len(upstash_server.requests)
    door.request(storage, browser, lambda s: s.set("b", 2))
    assert since(upstash_server, mark) == ["GETEX", "EVALSHA"]
    assert len(upstash_server.requests) - mark == 2


def test_record_is_compact_json_under_prefix_with_ttl(
    make: Any, door: Door, direct: redis.Redis, redis_prefix: str
) -> None:
    storage = make(max_age=3600)
    browser = Browser(COOKIE)
    watch = Stopwatch()
    door.request(storage, browser, lambda s: s.update(user="ü€", n=[1, {}]))
    key = redis_prefix + session_id(storage, browser)
    assert direct.get(key) == '{"user":"ü€","n":[1,{}]}'.encode()
    assert watch.ttl_ok(direct.pttl(key) / 1000, 3600)


def test_rolling_read_moves_the_ttl_and_plain_read_does_not(
    make: Any, door: Door, direct: redis.Redis, redis_prefix: str
) -> None:
    rolling = make(max_age=3600)
    fixed = make(max_age=3600, rolling=False)
    browser = Browser(COOKIE)
    door.request(rolling, browser, lambda s: s.set("a", 1))
    key = redis_prefix + session_id(rolling, browser)
    direct.expire(key, 100)
    door.get(fixed, browser.header)
    assert direct.ttl(key) <= 100
    watch = Stopwatch()
    door.get(rolling, browser.header)
    assert watch.ttl_ok(direct.pttl(key) / 1000, 3600)


def test_ttl_option_applies_when_the_cookie_has_no_lifetime(
    make: Any, door: Door, direct: redis.Redis, redis_prefix: str
) -> None:
    storage = make(max_age=None, ttl=120)
    browser = Browser(COOKIE)
    watch = Stopwatch()
    door.request(storage, browser, lambda s: s.set("a", 1))
    assert watch.ttl_ok(direct.pttl(redis_prefix + session_id(storage, browser)) / 1000, 120)


def test_create_never_overwrites_an_existing_key(
    make: Any, door: Door, direct: redis.Redis, redis_prefix: str
) -> None:
    storage = make()
    taken = "0" * 32
    direct.set(redis_prefix + taken, b'{"owner":"someone else"}')
    ids = iter([taken, "1" * 32])
    storage.store.new_id = lambda: next(ids)
    session = door.get(storage, None)
    session["mine"] = True
    door.commit(storage, session)
    assert session.id == "1" * 32
    assert direct.get(redis_prefix + taken) == b'{"owner":"someone else"}'


# -- compare-and-set --------------------------------------------------------------------------------


def test_an_update_merges_with_a_change_made_since_it_read(
    make: Any, door: Door, upstash_server: UpstashRestServer
) -> None:
    storage = make()
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.update(a=1, notice="hi"))
    first = door.get(storage, browser.header)
    door.request(storage, browser, lambda s: s.set("b", 2))  # lands between first's read and commit
    first["c"] = 3
    del first["notice"]
    mark = len(upstash_server.requests)
    door.commit(storage, first)
    assert since(upstash_server, mark) == ["EVALSHA", "EVALSHA"]  # mismatch, then applied again
    assert dict(door.get(storage, browser.header)) == {"a": 1, "b": 2, "c": 3}


def test_an_update_never_brings_back_a_deleted_record(
    make: Any, door: Door, direct: redis.Redis, redis_prefix: str
) -> None:
    storage = make()
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    key = redis_prefix + session_id(storage, browser)
    session = door.get(storage, browser.header)
    direct.delete(key)
    session["b"] = 2
    header = door.commit(storage, session)
    assert header is not None and "Expires=Thu, 01 Jan 1970" in header
    assert direct.exists(key) == 0


def test_a_lifetime_only_update_keeps_the_bytes_in_one_getex(
    make: Any, door: Door, direct: redis.Redis, redis_prefix: str, upstash_server: UpstashRestServer
) -> None:
    storage = make()
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    key = redis_prefix + session_id(storage, browser)
    written_by_javascript = b'{"a": 1.0, "when":"2026-01-01T00:00:00.000Z"}'  # not how Python writes it
    direct.set(key, written_by_javascript)
    session = door.get(storage, browser.header)
    watch = Stopwatch()
    mark = len(upstash_server.requests)
    door.commit(storage, session, max_age=7200)
    # One command moves the expiry and says whether the record is still there: no script to
    # send (or to resend after NOSCRIPT) and no bytes to rewrite.
    assert since(upstash_server, mark) == ["GETEX"]
    assert direct.get(key) == written_by_javascript
    assert watch.ttl_ok(direct.pttl(key) / 1000, 7200)


def test_a_lifetime_only_update_to_no_expiry_is_one_request(
    make: Any, door: Door, direct: redis.Redis, redis_prefix: str, upstash_server: UpstashRestServer
) -> None:
    # PERSIST answers 0 both for a missing key and for one without expiry, so telling them
    # apart would take a second request; GETEX ... PERSIST does both in one.
    store = make().store
    kept = door.call(store, "create", {"a": 1}, None)  # no expiry yet: PERSIST would say 0
    expiring = door.call(store, "create", {"a": 1}, utcnow() + timedelta(seconds=60))
    gone = door.call(store, "create", {"a": 1}, None)
    seen = door.call(store, "read", gone, None)
    door.call(store, "delete", gone)
    for id, alive in ((kept, True), (expiring, True), (gone, False)):
        mark = len(upstash_server.requests)
        record = door.call(store, "update", id, Changes(), None, seen)
        assert since(upstash_server, mark) == ["GETEX"]
        assert (record is not None) is alive
    assert direct.pttl(redis_prefix + expiring) == -1 and direct.get(redis_prefix + kept) == b'{"a":1}'


def test_an_update_of_a_record_made_here_sends_no_read_first(
    make: Any, door: Door, upstash_server: UpstashRestServer
) -> None:
    # A record this process created has no raw version: its bytes are its encoded data.
    storage = make()
    session = door.get(storage, None)
    session["a"] = 1
    door.commit(storage, session)
    session["b"] = 2
    mark = len(upstash_server.requests)
    door.commit(storage, session)
    assert since(upstash_server, mark) == ["EVALSHA"]


def test_noscript_falls_back_to_eval_once(
    make: Any, door: Door, upstash_private_server: UpstashRestServer, upstash_private_redis: RedisProcess
) -> None:
    storage = make(upstash_private_server)
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    backend = redis.Redis(port=upstash_private_redis.port)
    backend.script_flush()
    assert backend.script_exists(CAS_SHA1) == [False]
    mark = len(upstash_private_server.requests)
    door.request(storage, browser, lambda s: s.set("b", 2))
    door.request(storage, browser, lambda s: s.set("c", 3))
    assert since(upstash_private_server, mark) == ["GETEX", "EVALSHA", "EVAL", "GETEX", "EVALSHA"]
    assert dict(door.get(storage, browser.header)) == {"a": 1, "b": 2, "c": 3}
    backend.close()


def test_corrupt_records_read_as_missing(
    make: Any, door: Door, direct: redis.Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = make()
    for raw in (b"\xff\xfe not utf-8", b"[1, 2]", b"{not json"):
        browser = Browser(COOKIE)
        door.request(storage, browser, lambda s: s.set("a", 1))
        direct.set(redis_prefix + session_id(storage, browser), raw)
        with caplog.at_level(logging.WARNING, logger="websession"):
            session = door.get(storage, browser.header)
        assert session.is_new and len(session) == 0
        assert "unreadable" in caplog.text
        caplog.clear()


def test_read_your_writes_token_is_echoed(make: Any, door: Door, upstash_server: UpstashRestServer) -> None:
    storage = make()
    browser = Browser(COOKIE)
    mark = len(upstash_server.requests)
    door.request(storage, browser, lambda s: s.set("a", 1))
    door.request(storage, browser, lambda s: s.set("b", 2))
    requests = upstash_server.requests[mark:]
    assert len(requests) == 3
    for before, after in itertools.pairwise(requests):
        assert after.sync_token == before.answered_token


# -- failures ---------------------------------------------------------------------------------------


def test_wrong_token_is_a_store_error_not_an_outage(make: Any, door: Door) -> None:
    storage = make(token="not-the-token")
    with pytest.raises(SessionStoreError, match="Unauthorized") as caught:
        door.request(storage, Browser(COOKIE), lambda s: s.set("a", 1))
    assert not isinstance(caught.value, StoreUnavailableError)
    assert "token" in str(caught.value)


def test_a_key_of_the_wrong_type_is_an_unreadable_record(
    make: Any, door: Door, direct: redis.Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 5: a record of the wrong type gives a fresh session and a warning, never a 500.
    storage = make()
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    direct.delete(redis_prefix + session_id(storage, browser))
    direct.hset(redis_prefix + session_id(storage, browser), "field", "value")  # not a string any more
    caplog.set_level("WARNING", logger="websession")
    assert door.get(storage, browser.header).is_new
    assert "WRONGTYPE" in caplog.text


def test_a_command_error_carries_the_server_message(
    make: Any, door: Door, upstash_private_server: UpstashRestServer
) -> None:
    storage = make(upstash_private_server)
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    upstash_private_server.fault = (400, json.dumps({"error": "ERR unknown command 'GETEX'"}))
    try:
        with pytest.raises(SessionStoreError, match="unknown command") as caught:
            door.get(storage, browser.header)
    finally:
        upstash_private_server.fault = None
    assert isinstance(caught.value, UpstashCommandError)
    assert not isinstance(caught.value, StoreUnavailableError)


def test_nothing_listening_is_unavailable(door: Door, transport: str, make: Any) -> None:
    nobody = UpstashRestServer(("127.0.0.1", 1), port=free_port())  # never started
    storage = make(nobody)
    with pytest.raises(StoreUnavailableError) as caught:
        door.request(storage, Browser(COOKIE), lambda s: s.set("a", 1))
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_side_failures_are_unavailable_and_write_nothing(
    make: Any,
    door: Door,
    upstash_private_server: UpstashRestServer,
    upstash_private_redis: RedisProcess,
    status: int,
) -> None:
    storage = make(upstash_private_server)
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    backend = redis.Redis(port=upstash_private_redis.port)
    before = {key: backend.get(key) for key in backend.scan_iter()}
    session = door.get(storage, browser.header)
    session["b"] = 2
    upstash_private_server.fault = (status, "Service Unavailable")
    with pytest.raises(StoreUnavailableError):
        door.commit(storage, session)
    assert {key: backend.get(key) for key in backend.scan_iter()} == before  # nothing half-written
    upstash_private_server.fault = None
    door.request(storage, browser, lambda s: s.set("c", 3))
    assert dict(door.get(storage, browser.header)) == {"a": 1, "c": 3}
    backend.close()


def test_a_slow_server_times_out(door: Door, upstash_private_server: UpstashRestServer) -> None:
    storage = create_upstash_session_storage(
        cookie=create_cookie(COOKIE, secrets=["s"], max_age=60),
        url=upstash_private_server.url,
        token=upstash_private_server.token,
        timeout=0.2,
    )
    upstash_private_server.delay = 1.0
    try:
        with pytest.raises(StoreUnavailableError, match=r"within 0.2s") as caught:
            door.request(storage, Browser(COOKIE), lambda s: s.set("a", 1))
        assert isinstance(caught.value.__cause__, httpx.TimeoutException)
    finally:
        upstash_private_server.delay = 0.0
        door.close(storage)


def test_the_rest_server_restarting_mid_test(
    make: Any, door: Door, upstash_private_server: UpstashRestServer
) -> None:
    storage = make(upstash_private_server)
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    upstash_private_server.stop()
    with pytest.raises(StoreUnavailableError) as caught:
        door.get(storage, browser.header)
    assert caught.value.__cause__ is not None
    upstash_private_server.start()  # the same port
    door.request(storage, browser, lambda s: s.set("b", 2))
    assert dict(door.get(storage, browser.header)) == {"a": 1, "b": 2}


def test_the_redis_behind_it_restarting_mid_test(
    make: Any,
    door: Door,
    transport: str,
    upstash_private_server: UpstashRestServer,
    upstash_private_redis: RedisProcess,
) -> None:
    storage = make(upstash_private_server)
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    upstash_private_redis.stop()
    # The server answers HTTP 500 {"error": ...}. The official client drops the status code and
    # raises the message alone, so through it the failure is a store error, not an outage.
    expected = StoreUnavailableError if transport == "httpx" else SessionStoreError
    with pytest.raises(expected, match="internal server error"):
        door.request(storage, browser, lambda s: s.set("b", 2))
    upstash_private_redis.start()  # without persistence: the data is gone, the service is back
    session = door.request(storage, browser, lambda s: s.set("c", 3))
    assert dict(door.get(storage, browser.header)) == {"c": 3}
    assert session.id is not None


# -- clients, doors and configuration ---------------------------------------------------------------


def test_a_sync_client_serves_only_the_sync_door(upstash_server: UpstashRestServer) -> None:
    client = upstash_redis.Redis(upstash_server.url, upstash_server.token, allow_telemetry=False)
    storage = create_upstash_session_storage(cookie=create_cookie(COOKIE, secrets=["s"]), client=client)
    door = AsyncDoor()
    with pytest.raises(ConfigurationError, match=r"upstash_redis\.asyncio\.Redis"):
        door.request(storage, Browser(COOKIE), lambda s: s.set("a", 1))
    door.loop.close()
    client.close()


def test_an_async_client_serves_only_the_async_door(upstash_server: UpstashRestServer) -> None:
    client = upstash_redis.asyncio.Redis(upstash_server.url, upstash_server.token, allow_telemetry=False)
    storage = create_upstash_session_storage(cookie=create_cookie(COOKIE, secrets=["s"]), client=client)
    with pytest.raises(ConfigurationError, match="async door"):
        SyncDoor().request(storage, Browser(COOKIE), lambda s: s.set("a", 1))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs url= and token="),
        ({"url": "https://x.upstash.io"}, "needs url= and token="),
        ({"url": "redis://x:6379", "token": "t"}, "must be https://host"),
        ({"url": "https://x.upstash.io", "token": "t", "timeout": 0}, "positive"),
        ({"client": object()}, "must be an upstash_redis"),
        ({"client": "x", "url": "https://x.upstash.io"}, "not both"),
    ],
)
def test_configuration_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_upstash_session_storage(**options)


def test_open_store_speaks_upstash_urls(
    upstash_server: UpstashRestServer, redis_prefix: str, direct: redis.Redis
) -> None:
    address = upstash_server.url.removeprefix("http://")
    storage = open_store(
        f"upstash+http://{address}?token={upstash_server.token}&prefix={redis_prefix}&ttl=90",
        secrets=["s"],
    )
    assert isinstance(storage.store, UpstashStore)
    browser = Browser("__session")
    watch = Stopwatch()
    SyncDoor().request(storage, browser, lambda s: s.set("a", 1))
    assert watch.ttl_ok(direct.pttl(redis_prefix + session_id(storage, browser)) / 1000, 90)
    storage.close()


def test_open_store_takes_the_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTASH_REDIS_REST_TOKEN", "from-env")
    storage = open_store("upstash+https://eu1-example.upstash.io", secrets=["s"], prefix="app:")
    rest = storage.store.transport
    assert isinstance(rest, UpstashRestClient)
    assert rest.url == "https://eu1-example.upstash.io" and rest._token == "from-env"
    assert storage.store.prefix == "app:"
    with pytest.raises(ConfigurationError, match="does not take: colour"):
        open_store("upstash+https://eu1-example.upstash.io?colour=red", secrets=["s"])


def test_scan_lists_live_sessions_through_a_pipeline(
    upstash_server: UpstashRestServer, redis_prefix: str, transport: str
) -> None:
    door = SyncDoor()
    cookie = create_cookie(COOKIE, secrets=["s"], max_age=600)
    client = sdk_client(door, upstash_server) if transport == "sdk" else None
    if client is None:
        storage = create_upstash_session_storage(
            cookie=cookie, url=upstash_server.url, token=upstash_server.token, prefix=redis_prefix
        )
    else:
        storage = create_upstash_session_storage(cookie=cookie, client=client, prefix=redis_prefix)
    browsers = [Browser(COOKIE) for _ in range(3)]
    watch = Stopwatch()
    for n, browser in enumerate(browsers):
        door.request(storage, browser, lambda s, n=n: s.set("n", n))
    mark = len(upstash_server.requests)
    found = dict(storage.store.scan())
    assert {id: record.data for id, record in found.items()} == {
        session_id(storage, browser): {"n": n} for n, browser in enumerate(browsers)
    }
    now = storage.store.clock()
    assert all(watch.ttl_ok((record.expires - now).total_seconds(), 600) for record in found.values())
    assert "/pipeline" in [request.path for request in upstash_server.requests[mark:]]
    storage.close()
    if client is not None:
        client.close()


def test_write_many_pipelines_set_px_in_bounded_requests(
    upstash_server: UpstashRestServer, redis_prefix: str, direct: redis.Redis, transport: str
) -> None:
    door = SyncDoor()
    client = sdk_client(door, upstash_server) if transport == "sdk" else None
    if client is None:
        store = UpstashStore(UpstashRestClient(upstash_server.url, upstash_server.token), prefix=redis_prefix)
    else:
        store = UpstashStore(client, prefix=redis_prefix)
    watch = Stopwatch()
    now = utcnow()
    ids = [store.new_id() for _ in range(1100)]
    mark = len(upstash_server.requests)
    records = ((id, Record({"n": n}, now + timedelta(milliseconds=90_500))) for n, id in enumerate(ids))
    assert store.write_many(records) == 1100
    requests = upstash_server.requests[mark:]
    assert [len(request.commands) for request in requests] == [500, 500, 100]  # WRITE_BATCH each
    assert {request.path for request in requests} == {"/pipeline"}
    assert requests[0].commands[0][3] == "PX" and requests[0].commands[0][5:] == []
    # Milliseconds, not whole seconds: 90.5 s less the time the batch took, never rounded up to 91.
    assert watch.ttl_ok(int(requests[0].commands[0][4]) / 1000, 90.5, rounding=0.001)
    assert watch.ttl_ok(direct.pttl(redis_prefix + ids[0]) / 1000, 90.5, rounding=0.001)
    # Large values end a request early, so one request stays well under Upstash's size limit.
    mark = len(upstash_server.requests)
    big = "x" * (200 * 1024)
    assert store.write_many((store.new_id(), Record({"big": big})) for _ in range(5)) == 5
    assert [len(request.commands) for request in upstash_server.requests[mark:]] == [3, 2]
    # replace=False is SET ... NX: a live key is kept.
    assert (
        store.write_many([(ids[0], Record({"n": "new"})), (store.new_id(), Record({}))], replace=False) == 1
    )
    assert store.peek(ids[0]).data == {"n": 0}
    mark = len(upstash_server.requests)
    assert store.count() == 1100 + 5 + 1
    assert {c[0] for r in upstash_server.requests[mark:] for c in r.commands} == {"SCAN"}  # no values read
    store.close()
    if client is not None:
        client.close()


# -- the REST client's batches ---------------------------------------------------------------------


@pytest.fixture
def rest(upstash_server: UpstashRestServer) -> Iterator[UpstashRestClient]:
    client = UpstashRestClient(upstash_server.url, upstash_server.token)
    yield client
    client.close()


def test_pipeline_and_transaction(rest: UpstashRestClient, redis_prefix: str) -> None:
    key = redis_prefix + "batch"
    assert rest.transaction([["SET", key, "1"], ["INCR", key], ["GET", key]]) == ["OK", 2, b"2"]
    assert rest.pipeline([["GET", key], ["PTTL", key]]) == [b"2", -1]
    with pytest.raises(UpstashCommandError, match="not an integer"):
        rest.pipeline([["SET", key, "x"], ["INCR", key]])
    with pytest.raises(UpstashCommandError, match="EXECABORT"):
        rest.transaction([["SET", key, "y"], ["NOSUCHCOMMAND"]])
    assert rest.execute(["GET", key]) == b"x"  # the aborted transaction wrote nothing


def test_async_batches(rest: UpstashRestClient, redis_prefix: str) -> None:
    import asyncio

    key = redis_prefix + "abatch"

    async def run() -> list[Any]:
        results = [
            await rest.atransaction([["SET", key, "ünï"], ["GET", key]]),
            await rest.apipeline([["STRLEN", key]]),
            await rest.aexecute(["DEL", key]),
        ]
        await rest.aclose()
        return results

    assert asyncio.run(run()) == [["OK", "ünï".encode()], [5], 1]


# -- the local server keeps to the documented protocol ---------------------------------------------


def test_local_server_protocol(upstash_server: UpstashRestServer, redis_prefix: str) -> None:
    url, key = upstash_server.url, redis_prefix + "protocol"
    auth = {"Authorization": f"Bearer {upstash_server.token}"}
    with httpx.Client() as http:
        refused = http.post(url, json=["GET", key])
        assert (refused.status_code, refused.json()) == (401, {"error": "Unauthorized"})
        wrong = http.post(url, json=["GET", key], headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert http.post(url, json=["SET", key, "héllo"], headers=auth).json() == {"result": "OK"}
        plain = http.post(url, json=["GET", key], headers=auth)
        assert plain.json() == {"result": "héllo"} and plain.headers["upstash-sync-token"]
        encoded = http.post(url, json=["GET", key], headers={**auth, "Upstash-Encoding": "base64"})
        assert base64.b64decode(encoded.json()["result"]) == "héllo".encode()
        status = http.post(url, json=["SET", key, "v"], headers={**auth, "Upstash-Encoding": "base64"})
        assert status.json() == {"result": "OK"}  # the status reply is never encoded
        by_query = http.get(f"{url}/get/{key}", params={"_token": upstash_server.token})
        assert by_query.json() == {"result": "v"}
        error = http.post(url, json=["INCR", key], headers=auth)
        assert error.status_code == 400 and error.json()["error"].startswith("ERR")
        assert http.delete(url, headers=auth).status_code == 405
        batch = http.post(f"{url}/pipeline", json=[["GET", key], ["INCR", key]], headers=auth)
        assert batch.status_code == 200
        assert batch.json()[0] == {"result": "v"} and "error" in batch.json()[1]
        assert http.post(url, content=b"not json", headers=auth).status_code == 400
    direct = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    direct.delete(key)
    direct.close()


def test_async_door_works_across_event_loops(upstash_server: UpstashRestServer, redis_prefix: str) -> None:
    import asyncio

    storage = create_upstash_session_storage(
        cookie=create_cookie(COOKIE, secrets=["s"]),
        url=upstash_server.url,
        token=upstash_server.token,
        prefix=redis_prefix,
    )
    browser = Browser(COOKIE)
    SyncDoor().request(storage, browser, lambda s: s.set("a", 1))
    for _ in range(2):  # a fresh loop each time, as some test runners and apps do
        assert asyncio.run(storage.aget_session(browser.header))["a"] == 1
    asyncio.run(storage.aclose())
