"""DynamoDB store behaviour beyond the conformance suite, against moto's server (an emulator):
the arc-table layout, value encoding, refused keys, expiry, the item limit and errors."""

from __future__ import annotations

import asyncio
import math
import secrets
import socket
from datetime import datetime, timedelta, timezone

import pytest
from botocore.config import Config

from tests.servers.moto import MOTO_CLIENT_OPTIONS, MOTO_REGION
from websession import (
    ConfigurationError,
    RecordTooLargeError,
    SessionStoreError,
    StoreUnavailableError,
    create_cookie,
    create_dynamodb_session_storage,
    open_store,
)
from websession.changes import Changes
from websession.stores.base import Record
from websession.stores.dynamodb import DynamoDBStore, create_dynamodb_table, marshal, unmarshal

COOKIE = create_cookie("s", secrets=["k"], max_age=3600)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(dynamodb_client, dynamodb_table: str, clock: Clock):
    store = DynamoDBStore(table=dynamodb_table, client=dynamodb_client, clock=clock)
    yield store
    store.close()


def item(client, table: str, id: str, idx: str = "_idx") -> dict:
    return client.get_item(TableName=table, Key={idx: {"S": id}}, ConsistentRead=True).get("Item", {})


# -- layout and encoding ---------------------------------------------------------------------

FIDELITY = {
    "empty_list": [],
    "empty_dict": {},
    "big": 2**63 - 1,
    "bigger": 2**64 + 1,
    "float": 0.1 + 0.2,
    "small": 1.5e-7,
    "text": 'ü€😀 \u2028 "q" \\',
    "empty_text": "",
    "nested": {"a": [1, {"b": []}], "c": None, "d": True},
}


def test_values_survive_and_are_stored_as_native_top_level_attributes(
    store: DynamoDBStore, dynamodb_client, dynamodb_table: str, clock: Clock
) -> None:
    expires = clock.now + timedelta(seconds=100)
    id = store.create(FIDELITY, expires)
    record = store.read(id, None)
    assert record is not None
    for key, value in FIDELITY.items():
        assert record.data[key] == value and type(record.data[key]) is type(value), key
    raw = item(dynamodb_client, dynamodb_table, id)
    assert raw["_idx"] == {"S": id}
    assert raw["_ttl"] == {"N": str(int(-(-expires.timestamp() // 1)))}
    assert raw["big"] == {"N": "9223372036854775807"}
    assert raw["float"] == {"N": "0.30000000000000004"}
    assert raw["empty_list"] == {"L": []} and raw["empty_dict"] == {"M": {}}
    assert raw["nested"]["M"]["a"] == {"L": [{"N": "1"}, {"M": {"b": {"L": []}}}]}


def test_unmarshal_reads_dynamodb_numbers_without_binary_floats() -> None:
    assert unmarshal({"N": "1"}) == 1 and type(unmarshal({"N": "1"})) is int
    assert unmarshal({"N": "123456789012345678901234567890"}) == 123456789012345678901234567890
    assert unmarshal({"N": "1E+20"}) == 1e20
    assert unmarshal({"N": "-0.5"}) == -0.5
    with pytest.raises(ValueError, match="SS"):
        unmarshal({"SS": ["a"]})


@pytest.mark.parametrize(
    ("value", "problem"),
    [(1e300, "outside DynamoDB's number range"), (1e-200, "outside"), (2**200, "more than 38 digits")],
)
def test_numbers_dynamodb_cannot_hold_are_refused_naming_the_key(
    store: DynamoDBStore, value: object, problem: str
) -> None:
    with pytest.raises(SessionStoreError, match=f"'n'.*{problem}"):
        store.create({"ok": 1, "n": [value]}, None)
    id = store.create({"ok": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    with pytest.raises(SessionStoreError, match="'n'"):
        store.update(id, Changes({"n": value}), None, seen)
    assert store.read(id, None) == seen


def test_marshal_refuses_what_is_not_json() -> None:
    with pytest.raises(SessionStoreError, match=r"'k'.*set"):
        marshal("k", {1, 2})


@pytest.mark.parametrize("key", ["_idx", "_ttl", ""])
def test_keys_that_collide_with_idx_or_ttl_are_refused(
    store: DynamoDBStore, dynamodb_client, dynamodb_table: str, key: str
) -> None:
    with pytest.raises(SessionStoreError, match="cannot be stored"):
        store.create({key: "boom"}, None)
    id = store.create({"a": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    for changes in (Changes({key: "boom"}), Changes({}, frozenset({key}))):
        with pytest.raises(SessionStoreError, match="cannot be stored"):
            store.update(id, changes, None, seen)
    assert item(dynamodb_client, dynamodb_table, id) == {"_idx": {"S": id}, "a": {"N": "1"}}


def test_an_item_written_by_remix_is_read(store: DynamoDBStore, dynamodb_client, dynamodb_table: str) -> None:
    """What @architect/functions writes for createArcTableSessionStorage: native types, _ttl."""
    id = secrets.token_hex(16)
    ttl = int(datetime.now(timezone.utc).timestamp()) + 600
    dynamodb_client.put_item(
        TableName=dynamodb_table,
        Item={
            "_idx": {"S": id},
            "_ttl": {"N": str(ttl)},
            "userId": {"S": "u1"},
            "__flash_notice__": {"S": "hi"},
            "cart": {"L": [{"N": "1"}, {"N": "2.5"}]},
        },
    )
    record = store.read(id, None)
    assert record is not None
    assert record.data == {"userId": "u1", "__flash_notice__": "hi", "cart": [1, 2.5]}
    assert record.expires == datetime.fromtimestamp(ttl, timezone.utc)


def test_a_foreign_type_is_a_corrupt_record(
    store: DynamoDBStore, dynamodb_client, dynamodb_table: str
) -> None:
    id = secrets.token_hex(16)
    dynamodb_client.put_item(TableName=dynamodb_table, Item={"_idx": {"S": id}, "tags": {"SS": ["a"]}})
    assert store.read(id, None) is None


# -- change sets and expiry -----------------------------------------------------------------


def test_update_sets_and_removes_keys_on_the_stored_item(store: DynamoDBStore, clock: Clock) -> None:
    id = store.create({"a": 1, "b": 2, "notice": "x"}, None)
    seen = store.read(id, None)
    assert seen is not None
    store.update(id, Changes({"c": 3}), None, seen)  # another request
    expires = clock.now + timedelta(seconds=60)
    result = store.update(id, Changes({"a": 10}, frozenset({"notice", "a"})), expires, seen)
    assert result is not None
    assert result.data == {"a": 10, "b": 2, "c": 3}
    assert result.expires is not None and result.expires >= expires


def test_update_without_expiry_removes_the_ttl(
    store: DynamoDBStore, dynamodb_client, dynamodb_table, clock
) -> None:
    id = store.create({"a": 1}, clock.now + timedelta(seconds=60))
    seen = store.read(id, None)
    assert seen is not None
    store.update(id, Changes({"b": 2}), None, seen)
    assert "_ttl" not in item(dynamodb_client, dynamodb_table, id)


def test_expired_item_is_invisible_and_never_brought_back(
    store: DynamoDBStore, dynamodb_client, dynamodb_table: str, clock: Clock
) -> None:
    id = store.create({"a": 1}, clock.now + timedelta(seconds=5))
    seen = store.read(id, None)
    assert seen is not None
    clock.now += timedelta(seconds=7)
    # DynamoDB has not deleted it yet (it deletes late), but nobody may see it.
    assert item(dynamodb_client, dynamodb_table, id)["a"] == {"N": "1"}
    assert store.read(id, None) is None
    assert store.read(id, clock.now + timedelta(hours=1)) is None
    assert store.update(id, Changes({"b": 2}), clock.now + timedelta(hours=1), seen) is None
    assert "b" not in item(dynamodb_client, dynamodb_table, id)


def test_deleted_item_is_not_recreated_by_update(
    store: DynamoDBStore, dynamodb_client, dynamodb_table: str
) -> None:
    id = store.create({"a": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    store.delete(id)
    assert store.update(id, Changes({"b": 2}), None, seen) is None
    assert item(dynamodb_client, dynamodb_table, id) == {}
    store.delete(id)  # deleting a missing item is not an error


def test_rolling_read_moves_the_ttl_only_when_due(
    store: DynamoDBStore, dynamodb_client, dynamodb_table: str, clock: Clock
) -> None:
    first = clock.now + timedelta(hours=1)
    id = store.create({"a": 1}, first)
    before = item(dynamodb_client, dynamodb_table, id)["_ttl"]
    store.read(id, first + timedelta(seconds=5))
    assert item(dynamodb_client, dynamodb_table, id)["_ttl"] == before
    later = first + timedelta(minutes=10)
    record = store.read(id, later)
    assert record is not None and record.expires == later
    assert item(dynamodb_client, dynamodb_table, id)["_ttl"] == {"N": str(int(-(-later.timestamp() // 1)))}


def test_item_over_400_kb_is_refused(store: DynamoDBStore) -> None:
    big = "x" * (410 * 1024)
    with pytest.raises(RecordTooLargeError, match="400 KB"):
        store.create({"big": big}, None)
    id = store.create({"a": 1}, None)
    seen = store.read(id, None)
    assert seen is not None
    with pytest.raises(RecordTooLargeError):
        store.update(id, Changes({"big": big}), None, seen)
    assert store.read(id, None) == seen


def test_purge_expired_and_scan(dynamodb_client, clock: Clock) -> None:
    table = f"purge-{secrets.token_hex(4)}"
    create_dynamodb_table(dynamodb_client, table)
    store = DynamoDBStore(table=table, client=dynamodb_client, clock=clock)
    dead = [store.create({"n": n}, clock.now + timedelta(seconds=5)) for n in range(3)]
    live = store.create({"n": 9}, clock.now + timedelta(hours=1))
    forever = store.create({"n": 10}, None)
    clock.now += timedelta(seconds=10)
    assert sorted(id for id, _ in store.scan()) == sorted([live, forever])
    assert store.purge_expired() == len(dead)
    assert store.purge_expired() == 0
    assert all(item(dynamodb_client, table, id) == {} for id in dead)


def test_write_many_batches_counts_and_keeps_the_arc_layout(dynamodb_client, clock: Clock) -> None:
    table = f"write-{secrets.token_hex(4)}"
    create_dynamodb_table(dynamodb_client, table)
    store = DynamoDBStore(table=table, client=dynamodb_client, clock=clock)
    later = clock.now + timedelta(hours=1)
    ids = [store.new_id() for _ in range(60)]  # three BatchWriteItem requests, from a generator
    assert store.write_many((id, Record({"n": n}, later)) for n, id in enumerate(ids)) == 60
    assert store.count() == 60
    assert item(dynamodb_client, table, ids[3]) == {
        "_idx": {"S": ids[3]},
        "n": {"N": "3"},
        "_ttl": {"N": str(math.ceil(later.timestamp()))},
    }
    # One id twice in a batch (BatchWriteItem refuses that): the later record wins.
    twice = [(ids[0], Record({"v": 1}, None)), (ids[0], Record({"v": 2}, None))]
    assert store.write_many(twice) == 2
    assert store.read(ids[0], None) == Record({"v": 2}, None)
    clock.now = later + timedelta(seconds=5)
    assert store.count() == 1  # only the record without expiry is live
    assert store.write_many([(ids[1], Record({"v": "new"}, None))], replace=False) == 1  # expired: taken over
    assert store.write_many([(ids[0], Record({"v": "new"}, None))], replace=False) == 0  # live: kept
    assert store.read(ids[0], None).data == {"v": 2}


def test_write_refuses_what_the_arc_layout_cannot_hold(store: DynamoDBStore) -> None:
    with pytest.raises(SessionStoreError, match="'_ttl'"):
        store.write(store.new_id(), {"_ttl": 1}, None)
    with pytest.raises(RecordTooLargeError, match="400 KB"):
        store.write_many([(store.new_id(), Record({"big": "x" * (410 * 1024)}))])
    with pytest.raises(RecordTooLargeError, match="400 KB"):
        store.write(store.new_id(), {"big": "x" * (410 * 1024)}, None, replace=False)


# -- table helper, clients, errors ----------------------------------------------------------


def test_table_helper_creates_the_table_with_ttl_and_is_idempotent(dynamodb_client) -> None:
    table = f"arc-{secrets.token_hex(4)}"
    create_dynamodb_table(dynamodb_client, table, idx="id", ttl="expires")
    create_dynamodb_table(dynamodb_client, table, idx="id", ttl="expires")
    described = dynamodb_client.describe_table(TableName=table)["Table"]
    assert described["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    ttl = dynamodb_client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expires"
    store = DynamoDBStore(table=table, idx="id", ttl="expires", client=dynamodb_client)
    id = store.create({"_idx": "fine here", "_ttl": 1}, datetime.now(timezone.utc) + timedelta(hours=1))
    assert item(dynamodb_client, table, id, idx="id")["_ttl"] == {"N": "1"}
    with pytest.raises(SessionStoreError, match="'expires'"):
        store.create({"expires": 1}, None)


def test_async_setup_creates_the_table(moto_endpoint: str, dynamodb_client) -> None:
    table = f"async-{secrets.token_hex(4)}"

    async def main() -> None:
        store = DynamoDBStore(
            table=table, endpoint_url=moto_endpoint, region=MOTO_REGION, client_options=MOTO_CLIENT_OPTIONS
        )
        try:
            await store.asetup()
            await store.asetup()
            id = await store.acreate({"a": 1}, None)
            assert (await store.aread(id, None)).data == {"a": 1}
        finally:
            await store.aclose()

    asyncio.run(main())
    assert dynamodb_client.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE"


def test_missing_table_says_how_to_create_it(dynamodb_client) -> None:
    store = DynamoDBStore(table="no-such-table", client=dynamodb_client)
    with pytest.raises(SessionStoreError, match=r"does not exist.*create_dynamodb_table"):
        store.read("0" * 32, None)


def test_sync_client_only_gives_a_clear_error_on_the_async_door(dynamodb_client, dynamodb_table: str) -> None:
    storage = create_dynamodb_session_storage(table=dynamodb_table, client=dynamodb_client, cookie=COOKIE)
    session = storage.get_session(None)
    session["a"] = 1
    header = storage.commit_session(session).split(";")[0]
    assert storage.get_session(header)["a"] == 1
    with pytest.raises(ConfigurationError, match="async_client="):
        asyncio.run(storage.aget_session(header))
    storage.close()
    assert dynamodb_client.describe_table(TableName=dynamodb_table)  # not closed by the store


def test_async_client_only_gives_a_clear_error_on_the_sync_door(
    moto_endpoint: str, dynamodb_table: str
) -> None:
    from aiobotocore.session import get_session

    async def main() -> None:
        async with get_session().create_client(
            "dynamodb", region_name=MOTO_REGION, endpoint_url=moto_endpoint, **MOTO_CLIENT_OPTIONS
        ) as client:
            storage = create_dynamodb_session_storage(
                table=dynamodb_table, async_client=client, cookie=COOKIE
            )
            session = await storage.aget_session(None)
            session["a"] = 1
            header = (await storage.acommit_session(session)).split(";")[0]
            assert (await storage.aget_session(header))["a"] == 1
            with pytest.raises(ConfigurationError, match="client="):
                storage.get_session(header)
            await storage.aclose()
            await client.describe_table(TableName=dynamodb_table)  # still open

    asyncio.run(main())


def test_unreachable_endpoint_is_store_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = {**MOTO_CLIENT_OPTIONS, "config": Config(connect_timeout=1, retries={"max_attempts": 1})}
    store = DynamoDBStore(
        table="t", endpoint_url=f"http://127.0.0.1:{port}", region=MOTO_REGION, client_options=options
    )
    with pytest.raises(StoreUnavailableError) as info:
        store.read("0" * 32, None)
    assert info.value.__cause__ is not None

    async def main() -> None:
        try:
            with pytest.raises(StoreUnavailableError):
                await store.aread("0" * 32, None)
        finally:
            await store.aclose()

    asyncio.run(main())


def test_bad_attribute_names_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        DynamoDBStore(table="t", idx="same", ttl="same")


def test_open_store_url(moto_endpoint: str, dynamodb_table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    storage = open_store(
        f"dynamodb://{dynamodb_table}?region={MOTO_REGION}&endpoint={moto_endpoint}&ttl=120",
        secrets=["k"],
    )
    try:
        store = storage.store
        assert isinstance(store, DynamoDBStore)
        assert (store.table, store.idx, store.ttl, store.default_ttl) == (dynamodb_table, "_idx", "_ttl", 120)
        session = storage.get_session(None)
        session["n"] = 1
        header = storage.commit_session(session).split(";")[0]
        assert storage.get_session(header)["n"] == 1
    finally:
        storage.close()
    with pytest.raises(ConfigurationError, match="names the table"):
        open_store("dynamodb://?region=x", secrets=["k"])
    with pytest.raises(ConfigurationError, match="does not take: idx"):
        open_store("dynamodb://t?idx=x", secrets=["k"])


def test_factory_takes_the_shared_options_and_its_older_keywords() -> None:
    def make(**kwargs: object) -> DynamoDBStore:
        storage = create_dynamodb_session_storage(table="t", region=MOTO_REGION, cookie=COOKIE, **kwargs)
        return storage.store

    store = make()
    assert (store.ttl, store.default_ttl, store.explicit_ttl) == ("_ttl", None, False)
    store = make(ttl="expires", default_ttl=60)  # the spellings from before StorageOptions
    assert (store.ttl, store.default_ttl, store.explicit_ttl) == ("expires", 60, True)
    store = make(ttl_attribute="expires", ttl=60, storage_key_secret="s")
    assert (store.ttl, store.default_ttl, store.explicit_ttl, store.hashes_ids) == ("expires", 60, True, True)
    with pytest.raises(TypeError, match="ttl_attribute= or its older spelling"):
        make(ttl_attribute="a", ttl="b")
    with pytest.raises(TypeError, match="unexpected keyword argument 'roling'"):
        make(roling=False)


def test_botocore_errors_become_websession_errors() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from websession.stores.dynamodb.errors import _Busy, _Cancelled, _Conflict, _NoIndex

    where = "DynamoDB table 't'"

    def raised(error: BaseException) -> BaseException:
        errors = DynamoDBStore(table="t", region=MOTO_REGION)._errors
        with pytest.raises(BaseException) as info, errors, errors:  # nested: passed through once made
            raise error
        assert info.value.__cause__ is error
        return info.value

    def client_error(code: str, message: str = "m", **more: object) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": message}, **more}, "Op")

    assert type(raised(client_error("ConditionalCheckFailedException"))) is _Conflict
    cancelled = raised(client_error("TransactionCanceledException", CancellationReasons=[{"Code": "None"}]))
    assert type(cancelled) is _Cancelled and cancelled.reasons == [{"Code": "None"}]
    assert str(cancelled) == f"{where}: m"
    assert type(raised(client_error("TransactionConflictException"))) is _Busy
    assert type(raised(client_error("ValidationException", "The document path is invalid"))) is _NoIndex
    too_large = raised(client_error("ValidationException", "Item size has exceeded the maximum allowed size"))
    assert type(too_large) is RecordTooLargeError and "400 KB" in str(too_large)
    for code in ("ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError"):
        assert type(raised(client_error(code))) is StoreUnavailableError
    missing = raised(client_error("ResourceNotFoundException"))
    assert type(missing) is SessionStoreError and str(missing).startswith(f"{where} does not exist (create")
    other = raised(client_error("ValidationException", "bad"))
    assert type(other) is SessionStoreError and str(other).startswith(f"{where}: An error occurred")
    down = raised(EndpointConnectionError(endpoint_url="http://x"))
    assert type(down) is StoreUnavailableError
    assert type(raised(NoCredentialsError())) is SessionStoreError
