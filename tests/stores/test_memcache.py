"""The memcached store against real memcached servers the tests start: round trips, the wire
format, expiry times, CAS, item and key limits, several servers, and failures."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from pymemcache.client.base import Client

from tests.conformance.harness import AsyncDoor, Browser, Door, SyncDoor
from tests.servers._processes import free_port
from tests.servers.memcached import MemcachedProcess
from tests.timing import Stopwatch
from websession import (
    ConfigurationError,
    RecordTooLargeError,
    StoreUnavailableError,
    create_cookie,
    create_memcache_session_storage,
    open_store,
)
from websession.stores.base import Record, utcnow
from websession.stores.memcache import MemcacheStore, Server, parse_server

COOKIE = "__session"
DAY = 24 * 3600


@pytest.fixture(params=["sync", "async"])
def door(request: pytest.FixtureRequest) -> Iterator[Door]:
    door = SyncDoor() if request.param == "sync" else AsyncDoor()
    yield door
    if isinstance(door, AsyncDoor) and not door.loop.is_closed():
        door.loop.close()


@pytest.fixture
def make(
    memcached_server: MemcachedProcess, memcache_prefix: str, door: Door
) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def build(*servers: MemcachedProcess, max_age: float | None = 3600, **options: Any) -> Any:
        storage = create_memcache_session_storage(
            cookie=create_cookie(COOKIE, secrets=["s3cret"], max_age=max_age),
            servers=[server.address for server in servers or (memcached_server,)],
            prefix=memcache_prefix,
            **options,
        )
        made.append(storage)
        return storage

    yield build
    for storage in made:
        if isinstance(door, AsyncDoor):
            door.run(storage.aclose())
        else:
            storage.close()


def raw_client(server: MemcachedProcess) -> Client:
    return Client(("127.0.0.1", server.port), default_noreply=False)


def session_id(storage: Any, browser: Browser) -> str:
    value = storage.cookie.parse(browser.header)
    assert isinstance(value, str)
    return value


def remaining_ttl(server: MemcachedProcess, key: bytes) -> int:
    """The item's remaining lifetime in seconds, from the meta command ``mg <key> t``."""
    reply = raw_client(server).raw_command(b"mg " + key + b" t", b"\r\n")
    flags = dict((part[:1], part[1:]) for part in reply.split()[1:])
    return int(flags[b"t"])


class Counting:
    """Counts the operations (one round trip each) a store sends, through either door."""

    def __init__(self, store: MemcacheStore) -> None:
        self.ops: list[str] = []
        call, acall = store._call, store._acall

        def counted(op: Any) -> Any:
            self.ops.append(op.name)
            return call(op)

        async def acounted(op: Any) -> Any:
            self.ops.append(op.name)
            return await acall(op)

        store._call, store._acall = counted, acounted  # type: ignore[method-assign]


# -- round trips and the wire format ----------------------------------------------------------------


def test_round_trips_none_one_two(make: Any, door: Door) -> None:
    storage = make()
    counting = Counting(storage.store)
    browser = Browser(COOKIE)
    assert door.commit(storage, door.get(storage, None)) is None
    assert counting.ops == []
    door.request(storage, browser, lambda s: s.set("a", 1))
    assert counting.ops == ["add"]
    counting.ops.clear()
    door.request(storage, browser)  # unchanged and rolling: gats reads and touches at once
    assert counting.ops == ["gats"]
    counting.ops.clear()
    door.request(storage, browser, lambda s: s.set("b", 2))
    assert counting.ops == ["gats", "cas"]
    not_rolling = make(rolling=False)
    counting = Counting(not_rolling.store)
    door.request(not_rolling, browser, lambda s: s.set("c", 3))
    assert counting.ops == ["gets", "cas"]
    assert dict(door.get(storage, browser.header)) == {"a": 1, "b": 2, "c": 3}


def test_record_is_compact_json_under_prefix_with_ttl(
    make: Any, door: Door, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    storage = make(max_age=3600)
    browser = Browser(COOKIE)
    watch = Stopwatch()
    door.request(storage, browser, lambda s: s.update(user="ü€", n=[1, {}]))
    key = (memcache_prefix + session_id(storage, browser)).encode()
    assert raw_client(memcached_server).get(key) == '{"user":"ü€","n":[1,{}]}'.encode()
    assert watch.ttl_ok(remaining_ttl(memcached_server, key), 3600)


def test_lifetimes_over_30_days_are_sent_as_absolute_times(
    make: Any, door: Door, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    storage = make(max_age=60 * DAY)
    browser = Browser(COOKIE)
    watch = Stopwatch()
    door.request(storage, browser, lambda s: s.set("a", 1))
    # Sent as 5184000 seconds, memcached would read a date in 1970 and drop the item at once.
    assert door.get(storage, browser.header)["a"] == 1
    key = (memcache_prefix + session_id(storage, browser)).encode()
    # memcached keeps time in whole seconds on its own clock, and turns an absolute time into a
    # lifetime with it: allow a few seconds either way, plus the time the test took.
    assert watch.ttl_ok(remaining_ttl(memcached_server, key), 60 * DAY, rounding=5)
    assert storage.store.exptime(storage.store.clock()) == 1  # never 0 ("never expires")


def test_rolling_read_moves_the_ttl_and_plain_read_does_not(
    make: Any, door: Door, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    rolling = make(max_age=3600)
    fixed = make(max_age=3600, rolling=False)
    browser = Browser(COOKIE)
    door.request(rolling, browser, lambda s: s.set("a", 1))
    key = (memcache_prefix + session_id(rolling, browser)).encode()
    raw_client(memcached_server).touch(key, 100, noreply=False)
    door.get(fixed, browser.header)
    assert remaining_ttl(memcached_server, key) <= 100
    watch = Stopwatch()
    door.get(rolling, browser.header)
    assert watch.ttl_ok(remaining_ttl(memcached_server, key), 3600)


def test_reads_without_gats_fall_back_to_gets_and_touch(
    make: Any, door: Door, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    storage = make(max_age=3600)
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    key = (memcache_prefix + session_id(storage, browser)).encode()
    raw_client(memcached_server).touch(key, 100, noreply=False)
    for node in (storage.store._sync_nodes or []) + (storage.store._async_nodes or []):
        node.has_gats = False  # as on memcached before 1.5.3
    watch = Stopwatch()
    door.request(storage, browser, lambda s: s.set("b", 2))
    assert watch.ttl_ok(remaining_ttl(memcached_server, key), 3600)
    assert dict(door.get(storage, browser.header)) == {"a": 1, "b": 2}


def test_ttl_option_applies_when_the_cookie_has_no_lifetime(
    make: Any, door: Door, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    storage = make(max_age=None, ttl=120)
    browser = Browser(COOKIE)
    watch = Stopwatch()
    door.request(storage, browser, lambda s: s.set("a", 1))
    key = (memcache_prefix + session_id(storage, browser)).encode()
    assert watch.ttl_ok(remaining_ttl(memcached_server, key), 120)


def test_create_never_overwrites_an_existing_key(
    make: Any, door: Door, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    storage = make()
    taken = "0" * 32
    raw_client(memcached_server).set((memcache_prefix + taken).encode(), b'{"owner":"someone else"}')
    ids = iter([taken, "1" * 32])
    storage.store.new_id = lambda: next(ids)
    session = door.get(storage, None)
    session["mine"] = True
    door.commit(storage, session)
    assert session.id == "1" * 32
    assert raw_client(memcached_server).get((memcache_prefix + taken).encode()) == b'{"owner":"someone else"}'


# -- compare-and-set --------------------------------------------------------------------------------


def test_an_update_merges_with_a_change_made_since_it_read(make: Any, door: Door) -> None:
    storage = make()
    counting = Counting(storage.store)
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.update(a=1, notice="hi"))
    first = door.get(storage, browser.header)
    door.request(storage, browser, lambda s: s.set("b", 2))  # lands between first's read and commit
    first["c"] = 3
    del first["notice"]
    counting.ops.clear()
    door.commit(storage, first)
    assert counting.ops == ["cas", "gets", "cas"]
    assert dict(door.get(storage, browser.header)) == {"a": 1, "b": 2, "c": 3}


def test_an_update_never_brings_back_a_deleted_record(
    make: Any, door: Door, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    storage = make()
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    key = (memcache_prefix + session_id(storage, browser)).encode()
    session = door.get(storage, browser.header)
    raw_client(memcached_server).delete(key)
    session["b"] = 2
    header = door.commit(storage, session)
    assert header is not None and "Expires=Thu, 01 Jan 1970" in header
    assert raw_client(memcached_server).get(key) is None


def test_a_lifetime_only_update_rewrites_the_same_bytes(
    make: Any, door: Door, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    storage = make()
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    key = (memcache_prefix + session_id(storage, browser)).encode()
    written_elsewhere = b'{"a": 1.0, "when":"2026-01-01T00:00:00.000Z"}'
    raw_client(memcached_server).set(key, written_elsewhere)
    door.commit(storage, door.get(storage, browser.header), max_age=7200)
    assert raw_client(memcached_server).get(key) == written_elsewhere
    assert remaining_ttl(memcached_server, key) > 7000


def test_corrupt_records_read_as_missing(
    make: Any,
    door: Door,
    memcached_server: MemcachedProcess,
    memcache_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = make()
    for raw in (b"\xff\xfe not utf-8", b"[1, 2]", b"{not json"):
        browser = Browser(COOKIE)
        door.request(storage, browser, lambda s: s.set("a", 1))
        raw_client(memcached_server).set((memcache_prefix + session_id(storage, browser)).encode(), raw)
        with caplog.at_level(logging.WARNING, logger="websession"):
            session = door.get(storage, browser.header)
        assert session.is_new and len(session) == 0
        assert "unreadable" in caplog.text
        caplog.clear()


# -- limits -------------------------------------------------------------------------------------------


def test_a_record_over_the_item_size_is_refused_before_sending(
    make: Any, door: Door, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    storage = make()
    counting = Counting(storage.store)
    with pytest.raises(RecordTooLargeError, match="max_item_size=1048576"):
        door.request(storage, Browser(COOKIE), lambda s: s.set("blob", "x" * (1024 * 1024)))
    assert counting.ops == []
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    with pytest.raises(RecordTooLargeError):
        door.request(storage, browser, lambda s: s.set("blob", "x" * (1024 * 1024)))
    assert dict(door.get(storage, browser.header)) == {"a": 1}  # the old record is intact


def test_a_record_the_server_refuses_as_too_large(make: Any, door: Door) -> None:
    storage = make(max_item_size=4 * 1024 * 1024)  # more than this memcached's -I 1m
    with pytest.raises(RecordTooLargeError, match="too large"):
        door.request(storage, Browser(COOKIE), lambda s: s.set("blob", "x" * (2 * 1024 * 1024)))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefix": "x" * 200}, "memcached allows 250"),
        ({"prefix": "has space:"}, "printable ASCII"),
        ({"prefix": "ünï:"}, "printable ASCII"),
        ({"servers": []}, "at least one server"),
        ({"servers": ["a:1", "a:1"]}, "listed twice"),
        ({"servers": ["a:port"]}, "not host:port"),
        ({"max_item_size": 100}, "too small"),
        ({"timeout": 0}, "positive"),
    ],
)
def test_configuration_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_memcache_session_storage(**options)


def test_server_specs() -> None:
    assert parse_server("10.0.0.5:11212") == Server("10.0.0.5", 11212)
    assert parse_server("cache") == Server("cache", 11211)
    assert parse_server(("::1", 11213)).name == "[::1]:11213"
    assert parse_server("[::1]") == Server("::1", 11211)


def test_open_store_speaks_memcache_urls(memcached_server: MemcachedProcess, memcache_prefix: str) -> None:
    storage = open_store(
        f"memcache://{memcached_server.address},127.0.0.1:1?prefix={memcache_prefix}&ttl=60&max_item_size=2097152",
        secrets=["s"],
    )
    store = storage.store
    assert isinstance(store, MemcacheStore)
    assert [server.name for server in store.servers] == [memcached_server.address, "127.0.0.1:1"]
    assert (store.prefix, store.default_ttl, store.max_item_size) == (memcache_prefix, 60.0, 2097152)
    with pytest.raises(ConfigurationError, match="does not take: colour"):
        open_store("memcache://127.0.0.1:11211?colour=red", secrets=["s"])


# -- several servers ----------------------------------------------------------------------------------


@pytest.fixture
def two_memcached() -> Iterator[list[MemcachedProcess]]:
    servers = [MemcachedProcess(), MemcachedProcess()]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.remove()


def test_sessions_spread_over_servers_the_same_way_for_both_doors(
    make: Any, door: Door, two_memcached: list[MemcachedProcess], memcache_prefix: str
) -> None:
    storage = make(*two_memcached)
    other_door = AsyncDoor() if isinstance(door, SyncDoor) else SyncDoor()
    browsers = [Browser(COOKIE) for _ in range(16)]
    for n, browser in enumerate(browsers):
        door.request(storage, browser, lambda s, n=n: s.set("n", n))
    holders: dict[int, int] = {}
    for n, browser in enumerate(browsers):
        key = (memcache_prefix + session_id(storage, browser)).encode()
        found = [i for i, server in enumerate(two_memcached) if raw_client(server).get(key) is not None]
        assert len(found) == 1
        holders[n] = found[0]
        assert storage.store.server_for(session_id(storage, browser)).port == two_memcached[found[0]].port
        assert other_door.get(storage, browser.header)["n"] == n  # the other door finds it too
    assert set(holders.values()) == {0, 1}
    other_door.close(storage)

    # One server down: its sessions are unavailable, the others keep working (nothing moves).
    two_memcached[0].stop()
    for n, browser in enumerate(browsers):
        if holders[n] == 0:
            with pytest.raises(StoreUnavailableError):
                door.get(storage, browser.header)
        else:
            assert door.get(storage, browser.header)["n"] == n


# -- maintenance: write, peek; no listing ------------------------------------------------------------


@pytest.fixture
def plain(memcached_server: MemcachedProcess, memcache_prefix: str) -> Iterator[MemcacheStore]:
    store = MemcacheStore([memcached_server.address], prefix=memcache_prefix)
    yield store
    store.close()


def test_write_sets_the_record_with_its_expiry(
    plain: MemcacheStore, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    id, far = plain.new_id(), plain.new_id()
    watch = Stopwatch()
    assert plain.write(id, {"a": [1, {}]}, utcnow() + timedelta(seconds=120))
    assert raw_client(memcached_server).get((memcache_prefix + id).encode()) == b'{"a":[1,{}]}'
    assert watch.ttl_ok(remaining_ttl(memcached_server, (memcache_prefix + id).encode()), 120)
    # Over 30 days memcached reads an absolute time; the remaining lifetime still carries over.
    watch = Stopwatch()
    assert plain.write(far, {}, utcnow() + timedelta(days=60))
    assert watch.ttl_ok(remaining_ttl(memcached_server, (memcache_prefix + far).encode()), 60 * DAY, 2)
    assert plain.write(id, {"a": 2}, None, replace=False) is False
    assert plain.write(id, {"a": 3}, None) is True
    assert remaining_ttl(memcached_server, (memcache_prefix + id).encode()) == -1
    assert plain.write(plain.new_id(), {"a": 1}, utcnow() - timedelta(seconds=1)) is False
    with pytest.raises(ValueError, match="not a valid session id"):
        plain.write("x\r\nflush_all", {}, None)  # keys travel in a text protocol


def test_write_many_counts_and_refuses_oversized_records(plain: MemcacheStore) -> None:
    later = utcnow() + timedelta(minutes=5)
    batch = [(plain.new_id(), Record({"n": n}, later)) for n in range(30)]
    assert plain.write_many(batch) == 30
    assert plain.write_many([*batch[:3], (plain.new_id(), Record({}))], replace=False) == 1
    with pytest.raises(RecordTooLargeError):
        plain.write(plain.new_id(), {"big": "x" * (1024 * 1024)}, None)


def test_peek_reads_the_expiry_without_touching(
    plain: MemcacheStore, memcached_server: MemcachedProcess, memcache_prefix: str
) -> None:
    watch = Stopwatch()
    expires = utcnow() + timedelta(seconds=300)
    id = plain.create({"n": 1}, expires)
    for _ in range(2):
        record = plain.peek(id)
        assert record is not None and record.data == {"n": 1}
        assert watch.close(record.expires, expires, rounding=1.5)
    assert watch.ttl_ok(remaining_ttl(memcached_server, (memcache_prefix + id).encode()), 300)
    assert plain.peek(plain.new_id()) is None
    assert plain.peek(id + "\r\nflush_all") is None
    assert plain.peek(id) is not None


def test_scan_and_count_say_memcached_cannot_list_keys(plain: MemcacheStore) -> None:
    for hook in (lambda: list(plain.scan()), plain.count):
        with pytest.raises(NotImplementedError, match="memcached has no command that enumerates keys"):
            hook()
    assert plain.purge_expired() == 0  # memcached expires items itself


# -- failures -----------------------------------------------------------------------------------------


def test_nothing_listening_is_unavailable(door: Door) -> None:
    storage = create_memcache_session_storage(
        cookie=create_cookie(COOKIE, secrets=["s"]), servers=[f"127.0.0.1:{free_port()}"]
    )
    with pytest.raises(StoreUnavailableError, match="unavailable") as caught:
        door.request(storage, Browser(COOKIE), lambda s: s.set("a", 1))
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    door.close(storage)


def test_memcached_restarting_mid_test(door: Door, private_memcached: MemcachedProcess) -> None:
    storage = create_memcache_session_storage(
        cookie=create_cookie(COOKIE, secrets=["s"], max_age=600), servers=[private_memcached.address]
    )
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    door.request(storage, browser, lambda s: s.set("b", 2))  # pooled connections are open now
    private_memcached.stop()
    with pytest.raises(StoreUnavailableError) as caught:
        door.request(storage, browser, lambda s: s.set("c", 3))
    assert caught.value.__cause__ is not None
    with pytest.raises(StoreUnavailableError):
        door.request(storage, Browser(COOKIE), lambda s: s.set("new", 1))
    private_memcached.start()  # the same port; memcached kept nothing
    session = door.request(storage, browser, lambda s: s.set("d", 4))
    assert dict(door.get(storage, browser.header)) == {"d": 4}
    assert session.id is not None
    door.close(storage)


class SilentServer:
    """Accepts connections and reads, but never answers; or closes right after reading."""

    def __init__(self, *, close_after_read: bool) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.close_after_read = close_after_read
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(connection)
            if self.close_after_read:
                connection.recv(65536)
                connection.close()

    def close(self) -> None:
        self.sock.close()
        for connection in self.connections:
            connection.close()


@pytest.mark.timeout(30)
def test_a_server_that_never_answers_times_out(door: Door) -> None:
    silent = SilentServer(close_after_read=False)
    storage = create_memcache_session_storage(
        cookie=create_cookie(COOKIE, secrets=["s"]), servers=[f"127.0.0.1:{silent.port}"], timeout=0.3
    )
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            door.request(storage, Browser(COOKIE), lambda s: s.set("a", 1))
        assert isinstance(caught.value.__cause__, TimeoutError)
    finally:
        door.close(storage)
        silent.close()


@pytest.mark.timeout(30)
def test_a_connection_closed_mid_reply_fails_instead_of_hanging(door: Door) -> None:
    closing = SilentServer(close_after_read=True)
    storage = create_memcache_session_storage(
        cookie=create_cookie(COOKIE, secrets=["s"]), servers=[f"127.0.0.1:{closing.port}"], timeout=5
    )
    try:
        with pytest.raises(StoreUnavailableError):
            door.request(storage, Browser(COOKIE), lambda s: s.set("a", 1))  # add
    finally:
        door.close(storage)
        closing.close()


def test_async_door_works_across_event_loops(make: Any, door: Door) -> None:
    storage = make()
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    for _ in range(2):  # a fresh loop each time, as some test runners and apps do
        assert asyncio.run(storage.aget_session(browser.header))["a"] == 1
