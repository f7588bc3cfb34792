"""Workers KV store behaviour beyond the conformance suite, against the Miniflare-backed KV REST
server (tests/servers/workers_kv.py): the Remix wire format, clamped expiry, round trips,
errors and URLs."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import secrets
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.servers.workers_kv import KVServer
from websession import (
    ConfigurationError,
    RecordTooLargeError,
    SessionStoreError,
    StoreUnavailableError,
    create_cookie,
    create_workers_kv_session_storage,
    open_store,
)
from websession.changes import Changes
from websession.stores.base import Record
from websession.stores.workers_kv import MAX_VALUE_BYTES, WorkersKVStore
from websession.stores.workers_kv import store as kv_store


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def prefix() -> str:
    return f"t-{secrets.token_hex(4)}:"


@pytest.fixture
def requests_seen() -> list[str]:
    return []


@pytest.fixture
def store(kv_server: KVServer, clock: Clock, prefix: str, requests_seen: list[str]):
    client = httpx.Client(
        event_hooks={"request": [lambda r: requests_seen.append(f"{r.method} {r.url.path}")]}
    )
    store = WorkersKVStore(
        base_url=kv_server.base_url, api_token=kv_server.api_token, prefix=prefix, client=client, clock=clock
    )
    yield store
    store.close()
    assert not client.is_closed  # a client passed in stays the caller's
    client.close()


@pytest.fixture
def kv(kv_server: KVServer):
    """A plain REST client for looking at what the store wrote."""
    with httpx.Client(
        base_url=kv_server.base_url, headers={"Authorization": f"Bearer {kv_server.api_token}"}
    ) as client:
        yield client


def key_path(prefix: str, id: str) -> str:
    return f"/values/{prefix.replace(':', '%3A')}{id}"


# -- wire format -----------------------------------------------------------------------------


def test_value_is_the_json_of_the_flat_data_under_prefix_plus_id(
    store: WorkersKVStore, kv: httpx.Client, prefix: str, clock: Clock
) -> None:
    data = {"user": "ü€😀", "n": 2**63 - 1, "f": 0.1 + 0.2, "l": [], "d": {}, "__flash_notice__": "hi"}
    expires = clock.now + timedelta(days=7)
    id = store.create(data, expires)
    response = kv.get(key_path(prefix, id))
    assert response.status_code == 200
    assert response.content == json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    assert int(response.headers["expiration"]) == int(-(-expires.timestamp() // 1))
    metadata = kv.get(f"/metadata/{prefix.replace(':', '%3A')}{id}").json()["result"]
    assert metadata == {"expires": int(-(-expires.timestamp() * 1000 // 1))}
    record = store.read(id, None)
    assert record is not None and record.data == data
    assert type(record.data["n"]) is int and type(record.data["f"]) is float


def test_a_value_written_by_remix_is_read(store: WorkersKVStore, kv: httpx.Client, prefix: str) -> None:
    """What createWorkersKVSessionStorage writes: JSON text, `expiration`, no metadata."""
    id = secrets.token_hex(16)
    expiration = int(datetime.now(timezone.utc).timestamp()) + 3600
    response = kv.put(key_path(prefix, id), params={"expiration": expiration}, content=b'{"userId":"u1"}')
    assert response.status_code == 200
    record = store.read(id, None)
    assert record is not None and record.data == {"userId": "u1"}
    assert record.expires == datetime.fromtimestamp(expiration, timezone.utc)


def test_short_lifetimes_are_clamped_for_kv_and_exact_on_read(
    store: WorkersKVStore, kv: httpx.Client, prefix: str, clock: Clock, requests_seen: list[str]
) -> None:
    expires = clock.now + timedelta(seconds=2)
    id = store.create({"a": 1}, expires)  # KV itself refuses expirations < 60 s ahead
    assert int(kv.get(key_path(prefix, id)).headers["expiration"]) >= clock.now.timestamp() + 60
    requests_seen.clear()
    record = store.read(id, None)
    assert record is not None and abs((record.expires - expires).total_seconds()) < 0.002
    assert [r.split()[0] + " " + r.split("/")[-2] for r in requests_seen] == ["GET values", "GET metadata"]
    clock.now += timedelta(seconds=3)
    assert store.read(id, None) is None
    seen = record
    assert store.update(id, Changes({"b": 2}), clock.now + timedelta(hours=1), seen) is None
    assert kv.get(key_path(prefix, id)).content == b'{"a":1}'  # the dead session was not rewritten


def test_a_far_expiry_costs_one_request_per_read(
    store: WorkersKVStore, clock: Clock, requests_seen: list[str]
) -> None:
    id = store.create({"a": 1}, clock.now + timedelta(hours=1))
    requests_seen.clear()
    assert store.read(id, None) is not None
    assert store.read(id, clock.now + timedelta(hours=1, seconds=1)) is not None  # not due: no write
    assert len(requests_seen) == 2 and all(r.startswith("GET") for r in requests_seen)
    record = store.read(id, clock.now + timedelta(hours=2))
    assert record is not None and record.expires == clock.now + timedelta(hours=2)
    assert requests_seen[-1].startswith("PUT")


def test_no_expiry_means_no_kv_expiration(store: WorkersKVStore, kv: httpx.Client, prefix: str) -> None:
    id = store.create({"a": 1}, None)
    response = kv.get(key_path(prefix, id))
    assert "expiration" not in response.headers
    record = store.read(id, None)
    assert record is not None and record.expires is None


# -- changes ----------------------------------------------------------------------------------


def test_update_applies_changes_to_the_current_value(store: WorkersKVStore, clock: Clock) -> None:
    id = store.create({"a": 1, "notice": "x"}, None)
    seen = store.read(id, None)
    assert seen is not None
    store.update(id, Changes({"c": 3}), None, seen)  # another request, earlier
    result = store.update(id, Changes({"b": 2}, frozenset({"notice"})), clock.now + timedelta(hours=1), seen)
    assert result is not None and result.data == {"a": 1, "c": 3, "b": 2}
    again = store.read(id, None)
    assert again is not None and again.data == result.data
    assert again.expires is not None and 0 <= (again.expires - result.expires).total_seconds() < 1


def test_update_of_a_deleted_session_returns_none_and_writes_nothing(
    store: WorkersKVStore, kv: httpx.Client, prefix: str
) -> None:
    id = store.create({"a": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    store.delete(id)
    store.delete(id)  # deleting a missing key is not an error
    assert store.update(id, Changes({"b": 2}), None, seen) is None
    assert kv.get(key_path(prefix, id)).status_code == 404


def test_the_store_declares_it_is_not_atomic() -> None:
    assert WorkersKVStore.atomic_changes is False
    assert "compare-and-set" in (WorkersKVStore.__doc__ or "")


def test_corrupt_value_is_treated_as_missing(
    store: WorkersKVStore, kv: httpx.Client, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    id = secrets.token_hex(16)
    kv.put(key_path(prefix, id), content=b"[1,2]")
    with caplog.at_level(logging.WARNING, logger="websession"):
        assert store.read(id, None) is None
    assert "workers-kv record" in caplog.text


def test_value_over_25_mib_is_refused_before_sending(store: WorkersKVStore, requests_seen: list[str]) -> None:
    with pytest.raises(RecordTooLargeError, match="at most"):
        store.create({"big": "x" * MAX_VALUE_BYTES}, None)
    assert requests_seen == []


def test_scan_lists_live_records_under_the_prefix(store: WorkersKVStore, clock: Clock) -> None:
    ids = {store.create({"n": n}, clock.now + timedelta(hours=1)) for n in range(3)}
    dead = store.create({"n": 9}, clock.now + timedelta(seconds=1))
    clock.now += timedelta(seconds=2)
    assert {id for id, _ in store.scan()} == ids
    assert dead not in ids


def test_scan_and_count_skip_what_the_listing_shows_expired(
    store: WorkersKVStore, clock: Clock, prefix: str, requests_seen: list[str]
) -> None:
    live = store.create({"n": 1}, clock.now + timedelta(hours=1))
    store.create({"n": 2}, clock.now + timedelta(seconds=1))  # KV keeps it 65 s; metadata says 1
    clock.now += timedelta(seconds=2)
    requests_seen.clear()
    assert store.count() == 1
    assert len(requests_seen) == 1 and requests_seen[0].endswith("/keys")  # no value is read
    requests_seen.clear()
    assert [id for id, _ in store.scan()] == [live]
    assert sum(1 for request in requests_seen if "/values/" in request) == 1  # only the live one


def test_write_many_uses_the_bulk_endpoint_with_exact_expiries(
    store: WorkersKVStore,
    clock: Clock,
    kv,
    prefix: str,
    requests_seen: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Miniflare writes a bulk request's keys one by one: smaller requests keep the test quick.
    monkeypatch.setattr(kv_store, "BULK_PAIRS", 100)
    ids = [store.new_id() for _ in range(150)]
    soon = clock.now + timedelta(seconds=3)  # under KV's 60-second minimum: clamped, exact in metadata
    later = clock.now + timedelta(hours=2)
    records = ((id, Record({"n": n}, soon if n == 0 else later)) for n, id in enumerate(ids))
    assert store.write_many(records) == 150
    assert [request.split()[0] for request in requests_seen] == ["PUT", "PUT"]  # BULK_PAIRS each
    assert all(request.endswith("/bulk") for request in requests_seen)
    assert kv.get(key_path(prefix, ids[1])).json() == {"n": 1}  # the Remix wire format
    # Far expiries come from KV's own expiration (whole seconds, rounded up); near ones, which KV
    # may have clamped, from the metadata (milliseconds).
    assert 0 <= (store.read(ids[1], None).expires - later).total_seconds() < 1
    assert abs((store.read(ids[0], None).expires - soon).total_seconds()) < 0.002
    clock.now += timedelta(seconds=5)
    assert store.read(ids[0], None) is None and store.count() == 149


def test_write_without_replace_reads_first(store: WorkersKVStore, clock: Clock) -> None:
    live, fresh = store.new_id(), store.new_id()
    store.write(live, {"v": "live"}, None)
    batch = [(live, Record({"v": "new"})), (fresh, Record({"v": "new"}))]
    assert store.write_many(batch, replace=False) == 1
    assert store.read(live, None).data == {"v": "live"} and store.read(fresh, None).data == {"v": "new"}
    assert store.write(live, {"v": "newer"}, None, replace=False) is False
    assert store.write(live, {"v": "past"}, clock.now - timedelta(seconds=1)) is False
    assert store.read(live, None).data == {"v": "live"}
    with pytest.raises(RecordTooLargeError):
        store.write_many([(store.new_id(), Record({"big": "x" * MAX_VALUE_BYTES}))])


# -- the async door --------------------------------------------------------------------------


def test_async_door_round_trip(kv_server: KVServer, prefix: str) -> None:
    async def main() -> None:
        store = WorkersKVStore(base_url=kv_server.base_url, api_token=kv_server.api_token, prefix=prefix)
        try:
            expires = datetime.now(timezone.utc) + timedelta(seconds=30)
            id = await store.acreate({"a": 1}, expires)
            record = await store.aread(id, None)
            assert record is not None and record.data == {"a": 1}
            assert abs((record.expires - expires).total_seconds()) < 0.002
            updated = await store.aupdate(id, Changes({"b": 2}), expires, record)
            assert updated is not None and updated.data == {"a": 1, "b": 2}
            await store.adelete(id)
            assert await store.aread(id, None) is None
        finally:
            await store.aclose()

    asyncio.run(main())


# -- errors ----------------------------------------------------------------------------------


def test_wrong_token_is_a_store_error_that_says_what_to_check(kv_server: KVServer) -> None:
    store = WorkersKVStore(base_url=kv_server.base_url, api_token="wrong")
    try:
        with pytest.raises(SessionStoreError, match=r"403.*api_token") as info:
            store.read("0" * 32, None)
        assert not isinstance(info.value, StoreUnavailableError)
    finally:
        store.close()


class _Failing(http.server.BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:
        body = json.dumps({"success": False, "errors": [{"code": 10001, "message": "try later"}]}).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [429, 500, 503])
def test_overload_and_server_errors_are_unavailable(status: int) -> None:
    handler = type("Handler", (_Failing,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    store = WorkersKVStore(base_url=f"http://127.0.0.1:{server.server_address[1]}/kv", api_token="t")
    try:
        with pytest.raises(StoreUnavailableError, match=f"{status}.*try later"):
            store.read("0" * 32, None)
        with pytest.raises(StoreUnavailableError):
            store.create({"a": 1}, None)
    finally:
        store.close()
        server.shutdown()
        server.server_close()


def test_unreachable_server_is_unavailable_on_both_doors() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Failing)
    port = server.server_address[1]
    server.server_close()  # nothing listens there now
    store = WorkersKVStore(base_url=f"http://127.0.0.1:{port}/kv", api_token="t", timeout=2)
    with pytest.raises(StoreUnavailableError) as info:
        store.read("0" * 32, None)
    assert isinstance(info.value.__cause__, httpx.TransportError)

    async def main() -> None:
        try:
            with pytest.raises(StoreUnavailableError):
                await store.aread("0" * 32, None)
        finally:
            await store.aclose()

    asyncio.run(main())


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="account_id"):
        WorkersKVStore(namespace_id="ns")
    with pytest.raises(ConfigurationError, match="512"):
        WorkersKVStore(base_url="http://x", prefix="p" * 500)
    store = WorkersKVStore(account_id="a/b", namespace_id="n", api_token="t")
    assert store.base_url == "https://api.cloudflare.com/client/v4/accounts/a%2Fb/storage/kv/namespaces/n"


# -- URLs ------------------------------------------------------------------------------------


def test_open_store_url(kv_server: KVServer, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", kv_server.api_token)
    storage = open_store(
        f"workers-kv://{kv_server.account_id}/{kv_server.namespace_id}?prefix={prefix}&ttl=300",
        base_url=kv_server.base_url,
        cookie=create_cookie("s", secrets=["k"]),
    )
    try:
        store = storage.store
        assert isinstance(store, WorkersKVStore)
        assert store.prefix == prefix and store.default_ttl == 300
        session = storage.get_session(None)
        session["n"] = 1
        header = storage.commit_session(session).split(";")[0]
        assert storage.get_session(header)["n"] == 1
    finally:
        storage.close()
    default = open_store("workers-kv://acc/ns", api_token="t", secrets=["k"]).store
    assert default.base_url.endswith("/accounts/acc/storage/kv/namespaces/ns")
    with pytest.raises(ConfigurationError, match="ACCOUNT_ID/NAMESPACE_ID"):
        open_store("workers-kv://acc", secrets=["k"])
    with pytest.raises(ConfigurationError, match="does not take: colour"):
        open_store("workers-kv://acc/ns?colour=red", secrets=["k"])


def test_factory_builds_a_storage(kv_server: KVServer, prefix: str) -> None:
    storage = create_workers_kv_session_storage(
        base_url=kv_server.base_url,
        api_token=kv_server.api_token,
        prefix=prefix,
        cookie=create_cookie("s", secrets=["k"], max_age=120),
    )
    try:
        session = storage.get_session(None)
        session.flash("notice", "hi")
        header = storage.commit_session(session).split(";")[0]
        again = storage.get_session(header)
        assert again.get("notice") == "hi"
        storage.commit_session(again)
        assert not storage.get_session(header).has("notice")
    finally:
        storage.close()
