"""The DynamoDB store's user items (websession.users) beyond the conformance suite, against
moto's server: the item layout, that reads and maintenance never take a user item for a
session, the round trips each operation costs, the interleavings of the two-step operations,
damaged items, hashed keys, the item limit, and transaction conflicts.

Each test runs through the sync door (boto3) and the async door (aiobotocore) where the
operation has both; "another process" is a second store on the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.servers.moto import MOTO_CLIENT_OPTIONS, MOTO_REGION
from websession import (
    ConfigurationError,
    RecordTooLargeError,
    SessionStorage,
    StoreUnavailableError,
    create_cookie,
    create_dynamodb_session_storage,
)
from websession.stores.dynamodb import TOMBSTONE_PREFIX, USER_ITEM_PREFIX, DynamoDBStore, plans, unmarshal
from websession.users import Entry, user_digest

from ..conformance.harness import AsyncDoor, Browser, Door, FakeClock, SyncDoor

COOKIE = create_cookie("__session", secrets=["k"], max_age=3600)
EXPIRED = "Expires=Thu, 01 Jan 1970"
SECRET = "storage-key-secret-for-tests"


class Recording:
    """A DynamoDB client (boto3 or aiobotocore) that records the operations called, runs a
    hook before the first call of an operation that matches, and can fail calls on purpose."""

    def __init__(self, client: Any, is_async: bool) -> None:
        self.client = client
        self.is_async = is_async
        self.calls: list[str] = []
        self.hooks: list[tuple[str, Callable[[dict[str, Any]], bool], Callable[[], None]]] = []
        self.failures: dict[str, list[Exception]] = {}

    def before(
        self,
        operation: str,
        action: Callable[[], None],
        when: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> None:
        self.hooks.append((operation, when, action))

    def _enter(self, name: str, kwargs: dict[str, Any]) -> None:
        self.calls.append(name)
        for hook in list(self.hooks):
            operation, when, action = hook
            if operation == name and when(kwargs):
                self.hooks.remove(hook)
                action()
        failures = self.failures.get(name)
        if failures:
            raise failures.pop(0)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if name.startswith("_") or not callable(method):
            return method
        if self.is_async:

            async def call_async(**kwargs: Any) -> Any:
                self._enter(name, kwargs)
                return await method(**kwargs)

            return call_async

        def call(**kwargs: Any) -> Any:
            self._enter(name, kwargs)
            return method(**kwargs)

        return call


@pytest.fixture(params=["sync", "async"])
def door(request: pytest.FixtureRequest) -> Door:
    return SyncDoor() if request.param == "sync" else AsyncDoor()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(
    door: Door, dynamodb_client: Any, dynamodb_test_table: str, moto_endpoint: str, clock: FakeClock
) -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def build(**options: Any) -> Any:
        storage = create_dynamodb_session_storage(
            table=dynamodb_test_table,
            client=dynamodb_client,
            endpoint_url=moto_endpoint,
            region=MOTO_REGION,
            client_options=MOTO_CLIENT_OPTIONS,
            cookie=COOKIE,
            clock=clock,
            **options,
        )
        made.append(storage)
        return storage

    yield build
    for storage in made:
        if isinstance(door, AsyncDoor):
            door.run(storage.aclose())
        storage.close()
    if isinstance(door, AsyncDoor):
        door.loop.close()


@pytest.fixture
def storage(make: Callable[..., Any]) -> Any:
    return make()


@pytest.fixture
def other(dynamodb_client: Any, dynamodb_test_table: str, clock: FakeClock) -> DynamoDBStore:
    """Another process's store on the same table (sync, its calls not recorded)."""
    return DynamoDBStore(table=dynamodb_test_table, client=dynamodb_client, clock=clock)


def recording(door: Door, storage: Any) -> Recording:
    """Route the door's client of ``storage`` through a Recording."""
    store = storage.store
    if isinstance(door, AsyncDoor):
        client = Recording(door.run(store._async()), is_async=True)
        store._async_client = client
    else:
        client = Recording(store._sync(), is_async=False)
        store._client = client
    return client


def sign_in(door: Door, storage: Any, user: str = "ada", **labels: str) -> Browser:
    browser = Browser("__session")
    door.request(storage, browser, lambda s: s.login(user, labels=labels or None))
    return browser


def key_of(storage: Any, browser: Browser) -> str:
    cookie = storage.cookie.read(browser.header)
    return str(storage.store.storage_key(cookie.value))


def keys(door: Door, storage: Any, user: str = "ada") -> list[str]:
    return [device.key for device in door.call(storage, "sessions_of", user)]


def user_item(client: Any, table: str, user: str = "ada") -> dict[str, Any]:
    key = {"_idx": {"S": USER_ITEM_PREFIX + user_digest(user)}}
    item: dict[str, Any] = client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item", {})
    return item


def put_user_item(client: Any, table: str, attributes: dict[str, Any], user: str = "ada") -> None:
    client.put_item(TableName=table, Item={"_idx": {"S": USER_ITEM_PREFIX + user_digest(user)}, **attributes})


def session_keys(client: Any, table: str) -> set[str]:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return {item["_idx"]["S"] for item in items if not item["_idx"]["S"].startswith(USER_ITEM_PREFIX)}


def cancelled(*codes: str, message: str = "") -> ClientError:
    reasons = [{"Code": code, "Message": message} if code != "None" else {"Code": "None"} for code in codes]
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": reasons,
        },
        "TransactWriteItems",
    )


def unavailable(operation: str) -> ClientError:
    """What DynamoDB answers when it cannot serve a request (the store raises
    StoreUnavailableError); what a BatchWriteItem throttled past its retries amounts to."""
    return ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, operation)


def fail_the_deletes(client: Recording) -> None:
    """Fail the next deletion of sessions: a DeleteItem (one session) or a BatchWriteItem."""
    client.failures["delete_item"] = [unavailable("DeleteItem")]
    client.failures["batch_write_item"] = [unavailable("BatchWriteItem")]


def between_the_steps_of_a_revocation(client: Recording, action: Callable[[], None]) -> None:
    """Run ``action`` once, after a revocation's index step and before it deletes sessions
    (a DeleteItem for one session, a BatchGetItem then BatchWriteItem for more)."""
    done: list[bool] = []

    def once() -> None:
        if not done:
            done.append(True)
            action()

    client.before("delete_item", once)
    client.before("batch_get_item", once)


def tombstones(client: Any, table: str, user: str = "ada") -> list[str]:
    return [name for name in user_item(client, table, user) if name.startswith(TOMBSTONE_PREFIX)]


# -- layout and listing --------------------------------------------------------------------


def test_a_user_is_one_item_of_the_table(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str
) -> None:
    browser = sign_in(door, storage, device="laptop")
    item = user_item(dynamodb_client, dynamodb_test_table)
    assert set(item) == {"_idx", "entries", "generation"}  # no _ttl: DynamoDB's TTL never takes it
    assert item["generation"] == {"N": "0"}
    [(key, stored)] = item["entries"]["M"].items()
    assert key == key_of(storage, browser)
    entry = Entry.from_json(unmarshal(stored))
    assert entry is not None and dict(entry.labels) == {"device": "laptop"}
    assert "ada" not in repr(item)  # the user id is only in the session, never in a key


def test_reads_scans_counts_and_purges_never_take_a_user_item_for_a_session(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str, clock: FakeClock
) -> None:
    store = storage.store
    browsers = [sign_in(door, storage), sign_in(door, storage), sign_in(door, storage, "grace")]
    anonymous = Browser("__session")
    door.request(storage, anonymous, lambda s: s.set("a", 1))
    ids = {storage.cookie.read(b.header).value for b in [*browsers, anonymous]}
    assert {id for id, _ in store.scan()} == ids
    assert store.count() == 4
    assert store.purge_expired() == 0
    user_key = USER_ITEM_PREFIX + user_digest("ada")
    assert store.read(user_key, None) is None and store.peek(user_key) is None
    forged = storage.cookie.serialize(user_key).split(";")[0]  # even signed with our secret
    assert door.get(storage, forged).is_new
    clock.advance(3601)
    assert store.purge_expired() == 4
    assert user_item(dynamodb_client, dynamodb_test_table)["entries"] == {"M": {}}  # pruned, kept
    assert user_item(dynamodb_client, dynamodb_test_table, "grace")["entries"] == {"M": {}}
    assert store.count() == 0 and list(store.scan()) == []


def test_purge_drops_entries_of_sessions_dynamodb_already_deleted(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str
) -> None:
    gone, kept = sign_in(door, storage), sign_in(door, storage)
    # What DynamoDB's own TTL does, late and without telling anyone.
    dynamodb_client.delete_item(TableName=dynamodb_test_table, Key={"_idx": {"S": key_of(storage, gone)}})
    assert storage.store.purge_expired() == 0
    entries = user_item(dynamodb_client, dynamodb_test_table)["entries"]["M"]
    assert list(entries) == [key_of(storage, kept)]


# -- round trips -----------------------------------------------------------------------------


def test_round_trips_of_each_operation(door: Door, storage: Any) -> None:
    client = recording(door, storage)

    def spent(action: Callable[[], Any]) -> list[str]:
        client.calls.clear()
        action()
        return list(client.calls)

    first = Browser("__session")
    # A user's very first session: the binding finds no user item, makes it, binds again.
    assert spent(lambda: door.request(storage, first, lambda s: s.login("ada"))) == [
        "transact_write_items",
        "put_item",
        "transact_write_items",
    ]
    browser = Browser("__session")
    door.request(storage, browser, lambda s: s.set("theme", "dark"))
    # A sign-in: the request's read, then take the anonymous session and bind the new one.
    assert spent(lambda: door.request(storage, browser, lambda s: s.login("ada"))) == [
        "get_item",
        "delete_item",
        "transact_write_items",
    ]
    # An unchanged request of a signed-in user: the ordinary read, nothing more.
    assert spent(lambda: door.request(storage, browser)) == ["get_item"]
    assert spent(lambda: door.request(storage, browser, lambda s: s.set("n", 1))) == [
        "get_item",
        "update_item",
    ]
    # A move takes the session, then its entry, then binds the new id.
    assert spent(lambda: door.request(storage, browser, lambda s: s.regenerate())) == [
        "get_item",
        "delete_item",
        "update_item",
        "transact_write_items",
    ]
    assert spent(lambda: door.call(storage, "sessions_of", "ada")) == ["get_item", "batch_get_item"]
    device = door.call(storage, "sessions_of", "ada")[0]
    # Revocations: tombstone the entries, delete the sessions, drop the tombstone.
    assert spent(lambda: door.call(storage, "revoke", device, user="ada")) == [
        "update_item",
        "delete_item",
        "update_item",
    ]
    sign_in(door, storage)
    assert spent(lambda: door.call(storage, "revoke_user", "ada")) == [
        "update_item",
        "batch_get_item",
        "batch_write_item",
        "update_item",
    ]
    again = sign_in(door, storage)
    assert spent(lambda: door.call(storage, "revoke_user", "ada")) == [
        "update_item",
        "delete_item",
        "update_item",
    ]
    again = sign_in(door, storage)
    assert spent(lambda: door.request(storage, again, lambda s: s.logout())) == [
        "get_item",
        "delete_item",
        "update_item",
        "put_item",
    ]


# -- the two-step operations, interleaved ----------------------------------------------------


def takes_entry_removal(kwargs: dict[str, Any]) -> bool:
    """take_for_user's second request: the UpdateItem that removes the entry."""
    return bool(kwargs.get("UpdateExpression") == "REMOVE #e.#k")


def test_revoke_user_between_the_two_steps_of_a_regenerates_take(
    door: Door, storage: Any, other: Any
) -> None:
    """take_for_user has deleted the record but not yet removed the entry when another
    process revokes the user: the revocation finds the record gone, and the take finds the
    entry gone, so the regenerate ends the session instead of moving it."""
    browser = sign_in(door, storage)
    client = recording(door, storage)
    revoked: list[int] = []
    client.before(
        "update_item", lambda: revoked.append(other.revoke_user("ada", None)), when=takes_entry_removal
    )
    session = door.get(storage, browser.header)
    session.regenerate()
    set_cookie = door.commit(storage, session)
    assert revoked == [0]  # the record had already been taken
    assert set_cookie is not None and EXPIRED in set_cookie
    assert door.get(storage, browser.header).is_new
    assert keys(door, storage) == [] and storage.store.count() == 0
    assert other.generation("ada") == 1


def test_revoke_user_between_a_regenerates_take_and_its_new_binding(
    door: Door, storage: Any, other: Any
) -> None:
    """The take is complete (entry and generation read) when another process revokes the
    user: the generation it moved refuses the binding of the new id."""
    browser = sign_in(door, storage)
    client = recording(door, storage)
    revoked: list[int] = []
    client.before("transact_write_items", lambda: revoked.append(other.revoke_user("ada", None)))
    session = door.get(storage, browser.header)
    session.regenerate()
    set_cookie = door.commit(storage, session)
    assert revoked == [0]  # the session had already left the index
    assert set_cookie is not None and EXPIRED in set_cookie
    assert keys(door, storage) == [] and storage.store.count() == 0


def test_revoke_between_the_two_steps_of_a_regenerates_take(door: Door, storage: Any, other: Any) -> None:
    browser = sign_in(door, storage)
    key = key_of(storage, browser)
    client = recording(door, storage)
    client.before("update_item", lambda: other.revoke(key, "ada"), when=takes_entry_removal)
    session = door.get(storage, browser.header)
    session.regenerate()
    set_cookie = door.commit(storage, session)
    assert set_cookie is not None and EXPIRED in set_cookie
    assert keys(door, storage) == [] and storage.store.count() == 0


@pytest.mark.parametrize("sessions", [1, 2], ids=["one-delete", "batch"])
def test_a_regenerate_between_the_steps_of_revoke_user(
    door: Door, storage: Any, other: Any, dynamodb_client: Any, dynamodb_test_table: str, sessions: int
) -> None:
    """revoke_user has moved the index into its tombstone but not yet deleted the sessions
    when another process regenerates one of them: its take finds no entry, so it deletes the
    record and ends the session instead of moving it."""
    browsers = [sign_in(door, storage) for _ in range(sessions)]
    elsewhere = SessionStorage(cookie=COOKIE, store=other)
    moved: list[str | None] = []

    def regenerate() -> None:
        session = elsewhere.get_session(browsers[0].header)
        session.regenerate()
        moved.append(elsewhere.commit_session(session))

    between_the_steps_of_a_revocation(recording(door, storage), regenerate)
    door.call(storage, "revoke_user", "ada")
    assert len(moved) == 1 and moved[0] is not None and EXPIRED in moved[0]
    assert all(door.get(storage, b.header).is_new for b in browsers)
    assert session_keys(dynamodb_client, dynamodb_test_table) == set()
    assert keys(door, storage) == []
    assert tombstones(dynamodb_client, dynamodb_test_table) == []


def test_a_sign_in_between_the_steps_of_revoke_user_stays_revocable(
    door: Door, storage: Any, other: Any
) -> None:
    """A sign-in that lands after the index was moved into the tombstone is a new session,
    after the revocation: it lives, and it is in the index, so the next revocation reaches it."""
    sign_in(door, storage)
    elsewhere = SessionStorage(cookie=COOKIE, store=other)
    late = Browser("__session")

    def sign_in_elsewhere() -> None:
        session = elsewhere.get_session(None)
        session.login("ada")
        late.receive(elsewhere.commit_session(session))

    between_the_steps_of_a_revocation(recording(door, storage), sign_in_elsewhere)
    assert door.call(storage, "revoke_user", "ada") == 1
    assert door.get(storage, late.header).user == "ada"
    assert keys(door, storage) == [key_of(storage, late)]
    assert door.call(storage, "revoke_user", "ada") == 1
    assert door.get(storage, late.header).is_new


def test_a_listing_between_the_steps_of_revoke_user_finishes_it_too(
    door: Door, storage: Any, other: Any, dynamodb_client: Any, dynamodb_test_table: str
) -> None:
    """Another process lists the user's devices while the revocation is under way: it sees
    the tombstone and finishes the revocation itself; the two finishings do not collide."""
    browsers = [sign_in(door, storage), sign_in(door, storage)]
    listed: list[list[Any]] = []
    between_the_steps_of_a_revocation(
        recording(door, storage), lambda: listed.append(other.sessions_of("ada"))
    )
    door.call(storage, "revoke_user", "ada")
    assert listed == [[]]
    assert all(door.get(storage, b.header).is_new for b in browsers)
    assert session_keys(dynamodb_client, dynamodb_test_table) == set()
    assert tombstones(dynamodb_client, dynamodb_test_table) == []


# -- damaged user items ----------------------------------------------------------------------

DAMAGED = {
    "entries-text": {"entries": {"S": "garbage"}, "generation": {"N": "0"}},
    "entries-list": {"entries": {"L": []}, "generation": {"N": "0"}},
    "generation-text": {"entries": {"M": {}}, "generation": {"S": "x"}},
    "generation-fraction": {"entries": {"M": {}}, "generation": {"N": "1.5"}},
    "no-generation": {"entries": {"M": {}}},
    "no-entries": {"generation": {"N": "2"}},
    "entries-under-other-keys": {
        "entries": {"M": {"not-a-key": {"S": "x"}, USER_ITEM_PREFIX + "x": {"M": {}}}},
        "generation": {"N": "0"},
    },
}


@pytest.mark.parametrize("damage", list(DAMAGED), ids=list(DAMAGED))
def test_a_damaged_user_item_never_raises(
    door: Door,
    storage: Any,
    dynamodb_client: Any,
    dynamodb_test_table: str,
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    put_user_item(dynamodb_client, dynamodb_test_table, DAMAGED[damage])
    assert keys(door, storage) == []
    assert isinstance(door.call(storage, "revoke_user", "ada"), int)
    browser = sign_in(door, storage)
    assert keys(door, storage) == [key_of(storage, browser)]
    door.request(storage, browser, lambda s: s.regenerate())
    if damage == "generation-fraction":
        # The generation the move read was unreadable, so it could not be matched: the move is
        # refused and the session ends (safe), once; the generation is whole again after.
        assert browser.header is None and keys(door, storage) == []
        browser = sign_in(door, storage)
        door.request(storage, browser, lambda s: s.regenerate())
    assert door.get(storage, browser.header).user == "ada"
    assert keys(door, storage) == [key_of(storage, browser)]
    assert storage.store.purge_expired() == 0
    assert door.call(storage, "revoke_user", "ada") == 1
    assert door.get(storage, browser.header).is_new
    item = user_item(dynamodb_client, dynamodb_test_table)
    assert "M" in item["entries"] and isinstance(unmarshal(item["generation"]), int)  # repaired


def test_an_unreadable_entry_is_not_listed_but_still_revoked(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str, caplog: pytest.LogCaptureFixture
) -> None:
    damaged, healthy = sign_in(door, storage), sign_in(door, storage)
    dynamodb_client.update_item(
        TableName=dynamodb_test_table,
        Key={"_idx": {"S": USER_ITEM_PREFIX + user_digest("ada")}},
        UpdateExpression="SET #e.#k = :garbage",
        ExpressionAttributeNames={"#e": "entries", "#k": key_of(storage, damaged)},
        ExpressionAttributeValues={":garbage": {"M": {"created": {"S": "yesterday"}}}},
    )
    with caplog.at_level("WARNING", logger="websession"):
        assert keys(door, storage) == [key_of(storage, healthy)]
    assert "unreadable" in caplog.text
    assert door.call(storage, "revoke_user", "ada") == 2
    assert door.get(storage, damaged.header).is_new and door.get(storage, healthy.header).is_new


def test_a_session_whose_entry_is_unreadable_is_not_carried_over(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str
) -> None:
    browser = sign_in(door, storage)
    put_user_item(
        dynamodb_client,
        dynamodb_test_table,
        {"entries": {"M": {key_of(storage, browser): {"S": "garbage"}}}, "generation": {"N": "0"}},
    )
    session = door.get(storage, browser.header)
    session.regenerate()
    set_cookie = door.commit(storage, session)
    assert set_cookie is not None and EXPIRED in set_cookie
    assert storage.store.count() == 0


# -- hashed keys -----------------------------------------------------------------------------


def test_with_storage_key_secret_the_user_item_holds_no_session_id(
    door: Door, make: Callable[..., Any], dynamodb_client: Any, dynamodb_test_table: str
) -> None:
    storage = make(storage_key_secret=SECRET)
    browsers = [sign_in(door, storage), sign_in(door, storage)]
    ids = [storage.cookie.read(b.header).value for b in browsers]
    item = repr(user_item(dynamodb_client, dynamodb_test_table))
    for id in ids:
        assert id not in item and storage.store.storage_key(id) in item
    assert sorted(keys(door, storage)) == sorted(storage.store.storage_key(id) for id in ids)
    door.request(storage, browsers[0], lambda s: s.regenerate())
    assert door.get(storage, browsers[0].header).user == "ada"
    device = next(
        d for d in door.call(storage, "sessions_of", "ada") if d.key == key_of(storage, browsers[1])
    )
    assert door.call(storage, "revoke", device, user="ada") is True
    assert door.call(storage, "revoke_user", "ada") == 1
    assert all(door.get(storage, b.header).is_new for b in browsers)


# -- limits and conflicts --------------------------------------------------------------------


def test_a_full_index_refuses_the_sign_in_with_a_clear_error(door: Door, storage: Any) -> None:
    storage.store.max_user_sessions = 3
    browsers = [sign_in(door, storage) for _ in range(3)]
    with pytest.raises(RecordTooLargeError, match="index item is full") as raised:
        sign_in(door, storage)
    assert "revoke" in str(raised.value)
    assert storage.store.count() == 3  # the refused session was not written either
    assert sorted(keys(door, storage)) == sorted(key_of(storage, b) for b in browsers)
    door.call(storage, "revoke", door.call(storage, "sessions_of", "ada")[0], user="ada")
    sign_in(door, storage)  # room again


@pytest.mark.parametrize(
    ("codes", "match"),
    [(("None", "ValidationError"), "index item is full"), (("ValidationError", "None"), "session is larger")],
)
def test_dynamodbs_item_limit_in_a_binding_is_a_clear_error(
    door: Door, storage: Any, codes: tuple[str, str], match: str
) -> None:
    """What DynamoDB answers when an item would pass 400 KB (moto does not enforce the limit
    on updates, so the answer is played back). A full user item is tidied and tried once
    more first; a session too large is refused at once."""
    client = recording(door, storage)
    client.failures["transact_write_items"] = [
        cancelled(*codes, message="Item size to update has exceeded the maximum allowed size")
    ] * 2
    with pytest.raises(RecordTooLargeError, match=match):
        sign_in(door, storage)
    assert client.calls.count("transact_write_items") == (2 if codes[1] == "ValidationError" else 1)
    assert storage.store.count() == 0


def test_a_user_item_over_the_limit_is_tidied_and_the_sign_in_tried_again(door: Door, storage: Any) -> None:
    client = recording(door, storage)
    client.failures["transact_write_items"] = [
        cancelled(
            "None", "ValidationError", message="Item size to update has exceeded the maximum allowed size"
        )
    ]
    browser = sign_in(door, storage)
    assert keys(door, storage) == [key_of(storage, browser)]


def test_transaction_conflicts_are_retried(door: Door, storage: Any) -> None:
    sign_in(door, storage)  # the user item exists
    client = recording(door, storage)
    client.failures["transact_write_items"] = [cancelled("None", "TransactionConflict")] * 2
    client.failures["update_item"] = [
        ClientError(
            {"Error": {"Code": "TransactionConflictException", "Message": "in a transaction"}}, "UpdateItem"
        )
    ]
    browser = sign_in(door, storage)
    assert client.calls.count("transact_write_items") == 3
    door.request(storage, browser, lambda s: s.regenerate())  # take_for_user's update: retried
    assert door.get(storage, browser.header).user == "ada"
    assert len(keys(door, storage)) == 2


def test_conflicts_that_never_end_are_store_unavailable(
    door: Door, storage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plans, "_backoff", lambda attempt: 0.0)
    client = recording(door, storage)
    client.failures["transact_write_items"] = [cancelled("None", "TransactionConflict")] * 20
    with pytest.raises(StoreUnavailableError, match="conflicts"):
        sign_in(door, storage)
    assert storage.store.count() == 0


def test_an_expired_session_is_not_listed_before_dynamodb_deletes_it(
    door: Door, storage: Any, clock: FakeClock
) -> None:
    browser = sign_in(door, storage)
    clock.advance(1800)
    young = sign_in(door, storage)
    clock.advance(1801)
    assert keys(door, storage) == [key_of(storage, young)]
    assert door.get(storage, browser.header).is_new
    assert door.call(storage, "revoke_user", "ada") == 1


@pytest.mark.parametrize("name", ["entries", "generation"])
def test_attribute_names_of_user_items_cannot_be_idx_or_ttl(name: str) -> None:
    with pytest.raises(ConfigurationError, match="user"):
        DynamoDBStore(table="t", ttl=name, region=MOTO_REGION)
    with pytest.raises(ConfigurationError, match="user"):
        DynamoDBStore(table="t", idx=name, region=MOTO_REGION)


def test_a_session_too_large_for_an_item_is_refused_at_sign_in(door: Door, storage: Any) -> None:
    browser = Browser("__session")
    with pytest.raises(RecordTooLargeError):
        door.request(storage, browser, lambda s: (s.set("blob", "x" * 500_000), s.login("ada")))
    assert storage.store.count() == 0 and keys(door, storage) == []


def test_sessions_of_and_revoke_user_read_past_one_batch(door: Door, storage: Any, clock: FakeClock) -> None:
    store = storage.store
    entry = Entry(clock.now, {}, 3600)
    expires = clock.now + timedelta(hours=1)
    ids = [store.create_for_user({}, expires, "ada", entry, None) for _ in range(105)]
    assert len(keys(door, storage)) == 105
    assert door.call(storage, "revoke_user", "ada") == 105
    assert all(store.read(id, None) is None for id in ids if id is not None)


# -- a failure between the steps ---------------------------------------------------------------


@pytest.mark.parametrize("finish", ["revoke_user", "sessions_of"])
def test_a_revoke_user_whose_deletes_fail_raises_and_is_finished_later(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str, finish: str
) -> None:
    """The index step succeeded, the deletes failed: the revocation raises, its sessions are no
    longer listed nor movable, and the next revoke_user or sessions_of deletes them."""
    browsers = [sign_in(door, storage), sign_in(door, storage)]
    client = recording(door, storage)
    fail_the_deletes(client)
    with pytest.raises(StoreUnavailableError):
        door.call(storage, "revoke_user", "ada")
    client.failures.clear()
    assert tombstones(dynamodb_client, dynamodb_test_table) != []
    # A revoked session that regenerates meanwhile ends instead of moving.
    door.request(storage, browsers[0], lambda s: s.regenerate())
    assert browsers[0].header is None
    if finish == "revoke_user":
        assert door.call(storage, "revoke_user", "ada") == 1  # the one the regenerate left
    else:
        assert keys(door, storage) == []
    assert door.get(storage, browsers[1].header).is_new
    assert session_keys(dynamodb_client, dynamodb_test_table) == set()
    assert tombstones(dynamodb_client, dynamodb_test_table) == []
    assert user_item(dynamodb_client, dynamodb_test_table)["entries"] == {"M": {}}


def test_a_revoke_user_that_keeps_one_session_keeps_it_when_finished_later(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str
) -> None:
    here, there = sign_in(door, storage), sign_in(door, storage)
    client = recording(door, storage)
    fail_the_deletes(client)
    with pytest.raises(StoreUnavailableError):
        door.call(storage, "revoke_user", "ada", keep=door.get(storage, here.header))
    client.failures.clear()
    assert keys(door, storage) == [key_of(storage, here)]  # and it finished the revocation
    assert door.get(storage, there.header).is_new
    assert door.get(storage, here.header).user == "ada"
    assert tombstones(dynamodb_client, dynamodb_test_table) == []


@pytest.mark.parametrize("finish", ["revoke", "sessions_of", "revoke_user"])
def test_a_revoke_whose_delete_fails_raises_and_is_finished_later(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str, finish: str
) -> None:
    doomed, other = sign_in(door, storage), sign_in(door, storage)
    key = key_of(storage, doomed)
    client = recording(door, storage)
    fail_the_deletes(client)
    with pytest.raises(StoreUnavailableError):
        door.call(storage, "revoke", key, user="ada")
    client.failures.clear()
    if finish == "revoke":
        assert door.call(storage, "revoke", key, user="ada") is True
        assert keys(door, storage) == [key_of(storage, other)]
    elif finish == "sessions_of":
        assert keys(door, storage) == [key_of(storage, other)]
    else:
        assert door.call(storage, "revoke_user", "ada") == 2
    assert door.get(storage, doomed.header).is_new
    assert tombstones(dynamodb_client, dynamodb_test_table) == []


@pytest.mark.parametrize("step", ["delete_item", "update_item"])
@pytest.mark.parametrize("change", ["regenerate", "logout"])
def test_a_failed_take_never_leaves_a_live_session_outside_the_index(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str, step: str, change: str
) -> None:
    """Whichever of take_for_user's two requests fails, the session is either gone or still
    indexed (so revoke_user reaches it): never alive and out of reach."""
    browser = sign_in(door, storage)
    key = key_of(storage, browser)
    client = recording(door, storage)
    client.failures[step] = [unavailable(step)]
    session = door.get(storage, browser.header)
    session.regenerate() if change == "regenerate" else session.logout()
    with pytest.raises(StoreUnavailableError):
        door.commit(storage, session)
    if door.get(storage, browser.header).user == "ada":
        assert keys(door, storage) == [key]  # still listed, still revocable
    door.call(storage, "revoke_user", "ada")
    assert door.get(storage, browser.header).is_new
    assert session_keys(dynamodb_client, dynamodb_test_table) == set()
    assert keys(door, storage) == []


def test_tombstones_are_not_counted_against_the_index_and_are_cleared_when_full(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str
) -> None:
    storage.store.max_user_sessions = 2
    for _ in range(2):
        sign_in(door, storage)
    client = recording(door, storage)
    fail_the_deletes(client)
    with pytest.raises(StoreUnavailableError):
        door.call(storage, "revoke_user", "ada")
    client.failures.clear()
    browsers = [sign_in(door, storage), sign_in(door, storage)]  # the index is empty again
    assert tombstones(dynamodb_client, dynamodb_test_table) != []
    with pytest.raises(RecordTooLargeError):
        sign_in(door, storage)  # full: it finishes the revocation, then refuses
    assert tombstones(dynamodb_client, dynamodb_test_table) == []
    assert session_keys(dynamodb_client, dynamodb_test_table) == {key_of(storage, b) for b in browsers}


def test_ended_sessions_do_not_fill_the_index(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str, clock: FakeClock
) -> None:
    """DynamoDB's TTL deletes session items but never their entries: a sign-in that finds the
    index full drops the entries of ended sessions and tries once more."""
    storage.store.max_user_sessions = 3
    for _ in range(3):
        sign_in(door, storage)
    clock.advance(7200)
    browser = sign_in(door, storage)
    assert keys(door, storage) == [key_of(storage, browser)]
    assert list(user_item(dynamodb_client, dynamodb_test_table)["entries"]["M"]) == [key_of(storage, browser)]


@pytest.mark.parametrize("generation", [{"S": "x"}, {"N": "1.5"}], ids=["text", "fraction"])
def test_revoke_user_keeps_the_session_to_keep_when_the_generation_is_damaged(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str, generation: dict[str, str]
) -> None:
    here, there = sign_in(door, storage), sign_in(door, storage)
    dynamodb_client.update_item(
        TableName=dynamodb_test_table,
        Key={"_idx": {"S": USER_ITEM_PREFIX + user_digest("ada")}},
        UpdateExpression="SET generation = :damaged",
        ExpressionAttributeValues={":damaged": generation},
    )
    assert door.call(storage, "revoke_user", "ada", keep=door.get(storage, here.header)) == 1
    assert door.get(storage, here.header).user == "ada" and door.get(storage, there.header).is_new
    assert keys(door, storage) == [key_of(storage, here)]
    assert isinstance(unmarshal(user_item(dynamodb_client, dynamodb_test_table)["generation"]), int)


def test_a_purge_finishes_a_revocation_that_failed_halfway(
    door: Door, storage: Any, dynamodb_client: Any, dynamodb_test_table: str
) -> None:
    browsers = [sign_in(door, storage), sign_in(door, storage)]
    client = recording(door, storage)
    fail_the_deletes(client)
    with pytest.raises(StoreUnavailableError):
        door.call(storage, "revoke_user", "ada")
    client.failures.clear()
    assert storage.store.purge_expired() == 0  # it counts expired sessions, not revoked ones
    assert all(door.get(storage, b.header).is_new for b in browsers)
    assert session_keys(dynamodb_client, dynamodb_test_table) == set()
    assert tombstones(dynamodb_client, dynamodb_test_table) == []
