"""The per-user index of the Redis-protocol stores (websession.stores.redis_users) beyond the
conformance suite: round trips counted by the server, key names and what they hold, the
index's expiry, maintenance that never takes an index for a session, corrupt index data,
hashed storage keys, the remix-v3 and hash records, Upstash sharing the same index, and the
interleavings and the failures between steps that Redis Cluster must survive."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
import redis.cluster

from tests.conformance.harness import AsyncDoor, Browser, Door, SyncDoor
from tests.servers.redis import RedisServer
from tests.servers.upstash import UpstashRestServer
from tests.stores.test_redis import Monitor
from websession import (
    StoreUnavailableError,
    create_cookie,
    create_cookie_session_storage,
    create_redis_session_storage,
    create_upstash_session_storage,
)
from websession.stores.redis import RedisStore
from websession.stores.redis_users import GENERATION_FIELD, Steps, index_key
from websession.users import USER_KEY, Device, Entry, user_digest

COOKIE = "__session"
EXPIRED = "Expires=Thu, 01 Jan 1970"


@pytest.fixture(params=["sync", "async"])
def door(request: pytest.FixtureRequest) -> Iterator[Door]:
    made = SyncDoor() if request.param == "sync" else AsyncDoor()
    yield made
    if isinstance(made, AsyncDoor):
        made.loop.close()


@pytest.fixture
def direct(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def make(url: str, prefix: str, **options: Any) -> Any:
    options.setdefault("cookie", create_cookie(COOKIE, secrets=["s3cret"], max_age=3600))
    return create_redis_session_storage(url=url, prefix=prefix, **options)


def close(door: Door, storage: Any) -> None:
    if isinstance(door, AsyncDoor):
        door.run(storage.aclose())
    else:
        storage.close()


def session_id(storage: Any, browser: Browser) -> str:
    value = storage.cookie.parse(browser.header)
    assert isinstance(value, str)
    return value


def generation(door: Door, storage: Any, user: str, *, bump: bool = False) -> int:
    store = storage.store
    if isinstance(door, AsyncDoor):
        return int(door.run(store.ageneration(user, bump=bump)))
    return int(store.generation(user, bump=bump))


def sign_in(door: Door, storage: Any, user: str = "ada", **labels: str) -> Browser:
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("theme", "dark"))
    door.request(storage, browser, lambda s: s.login(user, labels=labels or None))
    return browser


# -- round trips, counted by the server ------------------------------------------------------------

#: The commands each kind of request sends, by layout: the hash layout runs scripts where the
#: string layout has plain commands.
READ = {"string": "GETEX", "hash": "EVALSHA"}
CREATE = {"string": "SET", "hash": "EVALSHA"}
TAKE = {"string": "GETDEL", "hash": "EVALSHA"}


def requests_of_a_user(door: Door, storage: Any, layout: str) -> Iterator[tuple[str, list[str]]]:
    """Requests a signed-in app makes, each with the commands it must send and no more. The
    generator yields after each, so the caller counts what the server saw."""
    read, create, take = READ[layout], CREATE[layout], TAKE[layout]
    browser = Browser(COOKIE)
    door.request(storage, browser)
    yield "no cookie", []
    door.request(storage, browser, lambda s: s.login("ada"))
    yield "a new session signs in", ["EVALSHA"]
    door.request(storage, browser)
    yield "an unchanged signed-in request", [read]
    door.request(storage, browser, lambda s: s.set("cart", [1]))
    yield "a signed-in request that changes data", [read, "EVALSHA"]
    door.request(storage, browser, lambda s: s.regenerate())
    yield "a signed-in session moves to a new id", [read, "EVALSHA", "EVALSHA"]
    door.request(storage, browser, lambda s: s.logout())
    yield "sign out, keeping the other data", [read, "EVALSHA", create]
    door.request(storage, browser)
    yield "an unchanged anonymous request", [read]
    door.request(storage, browser, lambda s: s.login("ada"))
    yield "sign in: take the old record, create the bound one", [read, take, "EVALSHA"]
    door.request(storage, browser, lambda s: s.login("grace"))
    yield "sign in as someone else", [read, "EVALSHA", "EVALSHA"]
    [device] = door.call(storage, "sessions_of", "grace")
    yield "list the devices", ["EVALSHA"]
    assert door.call(storage, "revoke", device, user="grace") is True
    yield "revoke one device", ["EVALSHA"]
    door.call(storage, "revoke_user", "ada")
    yield "sign out everywhere", ["EVALSHA"]


@pytest.mark.parametrize("layout", ["string", "hash"])
def test_round_trips(private_redis: RedisServer, door: Door, layout: str) -> None:
    storage = make(private_redis.url, "t:", layout=layout)
    for _ in requests_of_a_user(door, storage, layout):  # load the scripts, open the connection
        pass
    with Monitor(private_redis) as monitor:
        monitor.commands()
        for what, expected in requests_of_a_user(door, storage, layout):
            assert monitor.commands() == expected, what
    close(door, storage)


def test_a_sign_in_is_two_round_trips_and_a_signed_in_read_one(private_redis: RedisServer) -> None:
    """The issue's speed rule, stated as the issue states it."""
    storage = make(private_redis.url, "t:")
    list(requests_of_a_user(SyncDoor(), storage, "string"))
    browser = Browser(COOKIE)
    with Monitor(private_redis) as monitor:
        monitor.commands()
        assert storage.commit_session(storage.get_session(None)) is None
        assert monitor.commands() == []  # no cookie: nothing
        SyncDoor().request(storage, browser, lambda s: s.set("a", 1))
        session = storage.get_session(browser.header)
        monitor.commands()
        session.login("ada")
        browser.receive(storage.commit_session(session))
        assert len(monitor.commands()) == 2  # the login's commit: take the old, create the bound
        SyncDoor().request(storage, browser)
        assert len(monitor.commands()) == 1  # signed in, unchanged: the read, rolling inside it
    storage.close()


# -- key names and what they hold ------------------------------------------------------------------


def test_the_index_is_a_hash_of_entries_under_the_prefix(
    door: Door, redis_url: str, redis_prefix: str, direct: redis.Redis
) -> None:
    storage = make(redis_url, redis_prefix)
    browser = sign_in(door, storage, device="laptop")
    id = session_id(storage, browser)
    index = f"{redis_prefix}user:{user_digest('ada')}"
    assert index == index_key(redis_prefix, "ada")
    assert direct.type(index) == b"hash"
    stored = direct.hgetall(index)
    assert set(stored) == {id.encode()}  # no generation before the first revocation
    entry = json.loads(stored[id.encode()])
    assert entry["labels"] == {"device": "laptop"} and 3599 <= entry["lifetime"] <= 3600
    assert Entry.from_json(entry) is not None
    assert json.loads(direct.get(redis_prefix + id))[USER_KEY] == {"id": "ada"}
    door.call(storage, "revoke_user", "grace")
    assert generation(door, storage, "grace") == 1
    assert direct.hget(index_key(redis_prefix, "grace"), GENERATION_FIELD) == b"1"
    close(door, storage)


def test_hash_layout_keeps_the_binding_as_a_field(
    door: Door, redis_url: str, redis_prefix: str, direct: redis.Redis
) -> None:
    storage = make(redis_url, redis_prefix, layout="hash")
    browser = sign_in(door, storage)
    id = session_id(storage, browser)
    assert direct.hgetall(redis_prefix + id) == {
        b"theme": b'"dark"',
        USER_KEY.encode(): b'{"id":"ada"}',
        b"": b"",
    }
    door.request(storage, browser, lambda s: s.regenerate())
    assert direct.exists(redis_prefix + id) == 0
    assert direct.hkeys(index_key(redis_prefix, "ada")) == [session_id(storage, browser).encode()]
    close(door, storage)


def test_remix_v3_keeps_the_binding_among_the_values(
    door: Door, redis_url: str, redis_prefix: str, direct: redis.Redis
) -> None:
    cookie = create_cookie(COOKIE, secrets=["s3cret"], max_age=3600, format="remix-v3")
    storage = make(redis_url, redis_prefix, format="remix-v3", cookie=cookie)
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.flash("notice", "Welcome"))
    door.request(storage, browser, lambda s: s.login("ada"))
    id = session_id(storage, browser)
    uuid.UUID(id)
    values, flash = json.loads(direct.get(redis_prefix + id))
    assert values == {USER_KEY: {"id": "ada"}} and flash == {"notice": "Welcome"}
    door.request(storage, browser, lambda s: s.logout())
    values, flash = json.loads(direct.get(redis_prefix + session_id(storage, browser)))
    assert USER_KEY not in values and flash == {"notice": "Welcome"}
    assert direct.exists(index_key(redis_prefix, "ada")) == 0
    close(door, storage)


def test_hashed_storage_keys_keep_ids_out_of_the_index(
    door: Door, redis_url: str, redis_prefix: str, direct: redis.Redis
) -> None:
    storage = make(redis_url, redis_prefix, storage_key_secret="index-secret")
    laptop, phone = sign_in(door, storage), sign_in(door, storage)
    ids = [session_id(storage, browser) for browser in (laptop, phone)]
    keys = [storage.store.storage_key(id) for id in ids]
    index = index_key(redis_prefix, "ada")
    stored = direct.hgetall(index)
    assert {key.decode() for key in stored} == set(keys)
    dump = b"".join(direct.dump(name) or b"" for name in direct.scan_iter(f"{redis_prefix}*"))
    assert not any(id.encode() in dump for id in ids)  # no live id anywhere in the store
    devices = door.call(storage, "sessions_of", "ada")
    assert [device.key for device in devices] == keys
    assert door.call(storage, "revoke", devices[0], user="ada") is True
    assert door.get(storage, laptop.header).is_new and door.get(storage, phone.header).user == "ada"
    assert door.call(storage, "revoke_user", "ada", keep=door.get(storage, phone.header)) == 0
    assert door.call(storage, "revoke_user", "ada") == 1
    assert direct.hkeys(index) == [GENERATION_FIELD.encode()]
    close(door, storage)


# -- the index's expiry ----------------------------------------------------------------------------


def test_an_index_never_expires_while_it_lists_sessions(
    redis_url: str, redis_prefix: str, direct: redis.Redis
) -> None:
    """Rolling reads move a record's expiry without touching the index: an index given the
    TTL of its sessions would end first, and sign-out-everywhere would then miss a session."""
    storage = make(redis_url, redis_prefix, cookie=create_cookie(COOKIE, secrets=["k"], max_age=2))
    browser = sign_in(SyncDoor(), storage)
    index = index_key(redis_prefix, "ada")
    assert direct.pttl(index) == -1
    for _ in range(3):  # used all along: lives past the lifetime it signed in with
        time.sleep(0.8)
        assert storage.get_session(browser.header).user == "ada"
    assert direct.pttl(index) == -1
    assert storage.revoke_user("ada") == 1
    assert storage.get_session(browser.header).is_new
    storage.close()


def test_a_revoked_users_generation_never_expires(any_redis: tuple[Any, Any]) -> None:
    """Cookie storages keep their revocations in the generation, so it must outlive every
    cookie, whichever operation leaves it alone in the index; an index that never held one
    vanishes with its last entry."""
    storage, direct = any_redis
    door = SyncDoor()
    index = index_key(storage.store.prefix, "ada")

    def only_the_generation(expected: int) -> bool:
        return direct.hgetall(index) == {GENERATION_FIELD.encode(): str(expected).encode()}

    browser = sign_in(door, storage)
    door.request(storage, browser, lambda s: s.logout())
    assert direct.exists(index) == 0  # never revoked: nothing to keep
    sign_in(door, storage)
    assert storage.revoke_user("ada") == 1
    assert only_the_generation(1) and direct.pttl(index) == -1
    sign_in(door, storage)
    assert storage.revoke(storage.sessions_of("ada")[0], user="ada") is True
    assert only_the_generation(2) and direct.pttl(index) == -1
    browser = sign_in(door, storage)
    door.request(storage, browser, lambda s: s.logout())  # the take leaves the generation alone
    assert only_the_generation(2) and direct.pttl(index) == -1
    browser = sign_in(door, storage)
    direct.delete(storage.store.key(session_id(storage, browser)))  # ended
    assert storage.sessions_of("ada") == []  # the listing leaves the generation alone
    assert only_the_generation(2) and direct.pttl(index) == -1
    assert storage.store.generation("ada") == 2


def test_a_revocation_takes_the_expiry_off_an_index(
    redis_url: str, redis_prefix: str, direct: redis.Redis
) -> None:
    """An index given an expiry elsewhere (an earlier version gave emptied ones a day) keeps
    its generation for good from the next revocation on."""
    storage = make(redis_url, redis_prefix)
    index = index_key(redis_prefix, "ada")
    assert storage.revoke_user("ada") == 0
    direct.pexpire(index, 60_000)
    assert storage.revoke_user("ada") == 0
    assert direct.pttl(index) == -1 and storage.store.generation("ada") == 2
    storage.close()


@pytest.mark.parametrize("kept_in", ["redis", "upstash"])
def test_cookie_revocations_kept_in_the_index_never_expire(
    request: pytest.FixtureRequest, kept_in: str, redis_url: str, redis_prefix: str, direct: redis.Redis
) -> None:
    """The review's case: a cookie sign-in, then both storages revoke the user; the index is
    left holding the generation alone, which must stay, or the cookie would come back."""
    if kept_in == "redis":
        kept = make(redis_url, redis_prefix)
    else:
        server = request.getfixturevalue("upstash_server")
        kept = create_upstash_session_storage(
            cookie=create_cookie(COOKIE, secrets=["s3cret"]),
            url=server.url,
            token=server.token,
            prefix=redis_prefix,
        )
    cookies = create_cookie_session_storage(
        cookie=create_cookie("c", secrets=["k"], max_age=3600), revocation=kept
    )
    session = cookies.get_session(None)
    session.login("ada")
    header = cookies.commit_session(session).split(";")[0]
    assert cookies.get_session(header).user == "ada"
    assert cookies.revoke_user("ada") == 0 and kept.revoke_user("ada") == 0
    index = index_key(redis_prefix, "ada")
    assert direct.hgetall(index) == {GENERATION_FIELD.encode(): b"2"}
    assert direct.pttl(index) == -1
    assert cookies.get_session(header).user is None
    kept.close()


def test_a_bumped_generation_never_expires(
    door: Door, redis_url: str, redis_prefix: str, direct: redis.Redis
) -> None:
    """What a cookie storage keeps here must outlive its cookies."""
    storage = make(redis_url, redis_prefix)
    assert generation(door, storage, "ada") == 0
    assert generation(door, storage, "ada", bump=True) == 1
    assert direct.pttl(index_key(redis_prefix, "ada")) == -1
    assert generation(door, storage, "ada") == 1
    close(door, storage)


def test_sign_ins_prune_sessions_that_ended(redis_url: str, redis_prefix: str, direct: redis.Redis) -> None:
    storage = make(redis_url, redis_prefix)
    gone = [sign_in(SyncDoor(), storage) for _ in range(3)]
    for browser in gone:
        direct.delete(redis_prefix + session_id(storage, browser))  # expired, say
    kept = sign_in(SyncDoor(), storage)
    assert direct.hkeys(index_key(redis_prefix, "ada")) == [session_id(storage, kept).encode()]
    storage.close()


# -- maintenance never takes an index for a session ------------------------------------------------


@pytest.mark.parametrize("secret", [None, "index-secret"])
def test_scan_and_count_skip_the_indexes(
    redis_url: str, redis_prefix: str, direct: redis.Redis, secret: str | None
) -> None:
    storage = make(redis_url, redis_prefix, storage_key_secret=secret)
    signed_in = [sign_in(SyncDoor(), storage, user) for user in ("ada", "grace")]
    anonymous = Browser(COOKIE)
    SyncDoor().request(storage, anonymous, lambda s: s.set("a", 1))
    storage.revoke_user("linus")  # an index holding only a generation
    assert direct.exists(index_key(redis_prefix, "ada"), index_key(redis_prefix, "linus")) == 2
    store = storage.store
    expected = {store.storage_key(session_id(storage, b)) for b in (*signed_in, anonymous)}
    assert store.count() == 3
    assert set(dict(store.scan())) == expected
    storage.close()


def test_upstash_maintenance_skips_the_indexes(upstash_server: UpstashRestServer, redis_prefix: str) -> None:
    storage = create_upstash_session_storage(
        cookie=create_cookie(COOKIE, secrets=["k"]),
        url=upstash_server.url,
        token=upstash_server.token,
        prefix=redis_prefix,
    )
    browser = sign_in(SyncDoor(), storage)
    storage.revoke_user("grace")
    assert storage.store.count() == 1
    assert list(dict(storage.store.scan())) == [session_id(storage, browser)]
    storage.close()


# -- corrupt index data ----------------------------------------------------------------------------


@pytest.fixture(params=["single", "cluster"])
def any_redis(request: pytest.FixtureRequest, redis_prefix: str) -> Iterator[tuple[Any, redis.Redis]]:
    """A storage and a direct client on one Redis server, or on Redis Cluster."""
    if request.param == "single":
        url = request.getfixturevalue("redis_url")
        direct: Any = redis.Redis.from_url(url)
        prefix = redis_prefix
    else:
        url = request.getfixturevalue("redis_cluster_url")
        direct = redis.cluster.RedisCluster.from_url(url.replace("redis+cluster", "redis"))
        prefix = f"users:{uuid.uuid4().hex[:8]}:"
    storage = make(url, prefix)
    assert storage.store.cluster == (request.param == "cluster")
    yield storage, direct
    storage.close()
    direct.close()


def test_corrupt_entries_are_skipped_never_raised_and_still_revoked(
    any_redis: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    storage, direct = any_redis
    prefix = storage.store.prefix
    good, garbled, wrong = (sign_in(SyncDoor(), storage, device=name) for name in ("good", "x", "y"))
    index = index_key(prefix, "ada")
    direct.hset(index, storage.store.storage_key(session_id(storage, garbled)), b"{not json")
    direct.hset(index, storage.store.storage_key(session_id(storage, wrong)), b'{"created":"yesterday"}')
    direct.hset(index, "not-a-session-key!", b"{}")
    with caplog.at_level(logging.WARNING, logger="websession"):
        [device] = storage.sessions_of("ada")
    assert device.labels == {"device": "good"}
    assert "user index entry" in caplog.text
    # Unlisted, not forgotten: a sign-out everywhere still ends them.
    assert storage.revoke_user("ada") == 3
    assert all(storage.get_session(b.header).is_new for b in (good, garbled, wrong))
    assert set(direct.hkeys(index)) == {GENERATION_FIELD.encode(), b"not-a-session-key!"}


def test_a_corrupt_entry_does_not_sign_its_session_out(any_redis: tuple[Any, Any]) -> None:
    storage, direct = any_redis
    browser = sign_in(SyncDoor(), storage)
    key = storage.store.storage_key(session_id(storage, browser))
    direct.hset(index_key(storage.store.prefix, "ada"), key, b"\xff garbage")
    SyncDoor().request(storage, browser, lambda s: s.regenerate())
    assert storage.get_session(browser.header).user == "ada"  # an entry was there: not revoked
    [device] = storage.sessions_of("ada")
    assert device.key == storage.store.storage_key(session_id(storage, browser))


def test_a_damaged_generation_reads_as_zero_and_revocations_repair_it(any_redis: tuple[Any, Any]) -> None:
    storage, direct = any_redis
    browser = sign_in(SyncDoor(), storage)
    index = index_key(storage.store.prefix, "ada")
    direct.hset(index, GENERATION_FIELD, b"many")
    assert storage.store.generation("ada") == 0
    SyncDoor().request(storage, browser, lambda s: s.regenerate())  # takes and creates at 0
    assert storage.get_session(browser.header).user == "ada"
    assert storage.revoke_user("ada") == 1
    assert storage.store.generation("ada") == 1


# -- Redis Cluster: the interleavings the ordering must survive ------------------------------------


def paused(steps: Steps[Any], after: int, meanwhile: Callable[[], Any]) -> Steps[Any]:
    """``steps``, with ``meanwhile()`` run once its first ``after`` commands have been answered:
    another request landing between two of this operation's round trips."""
    sent = 0
    op = next(steps)
    while True:
        reply = yield op
        sent += 1
        if sent == after:
            meanwhile()
        try:
            op = steps.send(reply)
        except StopIteration as done:
            return done.value


@pytest.fixture
def cluster(redis_cluster_url: str) -> Iterator[tuple[Any, RedisStore, Any]]:
    prefix = f"users:{uuid.uuid4().hex[:8]}:"
    storage = make(redis_cluster_url, prefix)
    direct = redis.cluster.RedisCluster.from_url(redis_cluster_url.replace("redis+cluster", "redis"))
    yield storage, storage.store, direct
    storage.close()
    direct.close()


def live(store: RedisStore, direct: Any) -> list[str]:
    """Every key of this store that is left: records and indexes alike."""
    return sorted(key.decode() for key in direct.scan_iter(match=f"{store.prefix}*"))


def test_cluster_keeps_index_and_records_in_different_slots(cluster: tuple[Any, RedisStore, Any]) -> None:
    storage, store, _ = cluster
    browsers = [sign_in(SyncDoor(), storage) for _ in range(4)]
    slots = {redis.cluster.key_slot(store.key(session_id(storage, b)).encode()) for b in browsers}
    index_slot = redis.cluster.key_slot(index_key(store.prefix, "ada").encode())
    assert len(slots | {index_slot}) > 1  # else the interleavings below would prove nothing


def test_cluster_revoke_user_between_the_takes_read_and_its_record(
    cluster: tuple[Any, RedisStore, Any],
) -> None:
    """Sign out everywhere lands after a regenerate read the entry, before it took the record:
    the revocation deletes the record, so there is nothing left to move."""
    storage, store, direct = cluster
    browser = sign_in(SyncDoor(), storage)
    id = session_id(storage, browser)
    counts: list[int] = []
    revoke = lambda: counts.append(store.revoke_user("ada", None))  # noqa: E731
    taken = store._run(paused(store._users.take(id, "ada"), 1, revoke), "take")
    assert counts == [1]
    assert taken.record is None
    assert live(store, direct) == [index_key(store.prefix, "ada")]  # the generation, alone
    assert storage.sessions_of("ada") == [] and storage.get_session(browser.header).is_new


def test_cluster_revoke_user_between_the_takes_record_and_its_entry(
    cluster: tuple[Any, RedisStore, Any],
) -> None:
    """Sign out everywhere lands after a regenerate took the record, before it removed the
    entry: the revocation finds no record to delete, but it moved the generation the new id
    would be created under, so the move is refused."""
    storage, store, direct = cluster
    browser = sign_in(SyncDoor(), storage)
    id = session_id(storage, browser)
    counts: list[int] = []
    revoke = lambda: counts.append(store.revoke_user("ada", None))  # noqa: E731
    taken = store._run(paused(store._users.take(id, "ada"), 2, revoke), "take")
    assert counts == [0]  # the take had the record already
    assert taken.record is not None and taken.entry is not None
    assert store.create_for_user(taken.record.data, None, "ada", taken.entry, taken.generation) is None
    assert live(store, direct) == [index_key(store.prefix, "ada")]
    assert storage.sessions_of("ada") == []


@pytest.mark.parametrize("after", [1, 2], ids=["tombstoned", "records-deleted"])
def test_cluster_take_between_the_revocations_steps(cluster: tuple[Any, RedisStore, Any], after: int) -> None:
    """A regenerate lands after sign-out-everywhere tombstoned the entries (and perhaps deleted
    the records), before it removed the tombstones: a tombstone is no entry, so the take
    deletes the record and reports it revoked."""
    storage, store, direct = cluster
    browser = sign_in(SyncDoor(), storage)
    id = session_id(storage, browser)
    takes = []
    take = lambda: takes.append(store.take_for_user(id, "ada"))  # noqa: E731
    deleted = store._run(paused(store._users.revoke_user("ada", None), after, take), "revoke_user")
    [taken] = takes
    assert taken.record is None and taken.entry is None
    assert deleted == (0 if after == 1 else 1)  # whoever came first deleted it
    assert live(store, direct) == [index_key(store.prefix, "ada")]
    assert storage.get_session(browser.header).is_new


def test_cluster_revoke_user_between_the_create_and_its_entry(cluster: tuple[Any, RedisStore, Any]) -> None:
    """A moved session's record is written, then sign-out-everywhere runs whole, then the
    entry would be added: the generation moved, so the record is deleted instead."""
    storage, store, direct = cluster
    browser = sign_in(SyncDoor(), storage)
    taken = store.take_for_user(session_id(storage, browser), "ada")
    assert taken.record is not None and taken.entry is not None
    steps = store._users.create(taken.record.data, None, "ada", taken.entry, taken.generation)
    assert store._run(paused(steps, 1, lambda: store.revoke_user("ada", None)), "create") is None
    assert live(store, direct) == [index_key(store.prefix, "ada")]


@pytest.mark.parametrize("after", [1, 2], ids=["before-the-record", "before-the-entry"])
def test_cluster_revoke_one_in_the_middle_of_a_take(cluster: tuple[Any, RedisStore, Any], after: int) -> None:
    storage, store, direct = cluster
    browser = sign_in(SyncDoor(), storage)
    id = session_id(storage, browser)
    key = store.storage_key(id)
    revoked: list[bool] = []
    revoke = lambda: revoked.append(store.revoke(key, "ada"))  # noqa: E731
    taken = store._run(paused(store._users.take(id, "ada"), after, revoke), "take")
    if after == 1:  # the revocation deleted the record: nothing left to move
        assert revoked == [True] and taken.record is None
    else:  # the take had it, but the generation moved: the move is refused
        assert revoked == [False] and taken.record is not None and taken.entry is not None
        assert store.create_for_user(taken.record.data, None, "ada", taken.entry, taken.generation) is None
    assert live(store, direct) == [index_key(store.prefix, "ada")]
    assert storage.get_session(browser.header).is_new


def test_cluster_revoke_user_deletes_records_on_every_node(cluster: tuple[Any, RedisStore, Any]) -> None:
    storage, store, direct = cluster
    browsers = [sign_in(SyncDoor(), storage) for _ in range(12)]
    other = sign_in(SyncDoor(), storage, "grace")
    assert storage.revoke_user("ada", keep=storage.get_session(browsers[0].header)) == 11
    assert [storage.get_session(b.header).is_new for b in browsers] == [False] + [True] * 11
    assert len(storage.sessions_of("ada")) == 1 and storage.get_session(other.header).user == "grace"
    kept = [store.key(session_id(storage, b)) for b in (browsers[0], other)]
    indexes = [index_key(store.prefix, user) for user in ("ada", "grace")]
    assert live(store, direct) == sorted(kept + indexes)


def test_cluster_listing_prunes_ended_sessions(cluster: tuple[Any, RedisStore, Any]) -> None:
    storage, store, direct = cluster
    browsers = [sign_in(SyncDoor(), storage) for _ in range(3)]
    direct.delete(store.key(session_id(storage, browsers[0])))
    expected = [store.storage_key(session_id(storage, b)) for b in browsers[1:]]
    assert [device.key for device in storage.sessions_of("ada")] == expected
    assert len(direct.hkeys(index_key(store.prefix, "ada"))) == 2


# -- Redis Cluster: a failure between an operation's steps -----------------------------------------


@pytest.fixture
def on_cluster(door: Door, redis_cluster_url: str) -> Iterator[tuple[Any, RedisStore, Any]]:
    """A storage on Redis Cluster used through ``door``, and a direct client."""
    storage = make(redis_cluster_url, f"users:{uuid.uuid4().hex[:8]}:")
    direct = redis.cluster.RedisCluster.from_url(redis_cluster_url.replace("redis+cluster", "redis"))
    yield storage, storage.store, direct
    close(door, storage)
    direct.close()


def fail_once(
    monkeypatch: pytest.MonkeyPatch, matches: Callable[[Any], bool], *, executed: bool = False
) -> list[Any]:
    """Make the first command the store sends that ``matches`` fail as a timeout or a failover
    does: the command never reaches the server, or (``executed``) it runs and its reply is lost.
    Returns the list the failed command is put in, so a test can check that it happened."""
    import websession.stores.redis.wire as module

    failed: list[Any] = []
    send, asend = module.send, module.asend

    def fails(op: Any) -> bool:
        if failed or not matches(op):
            return False
        failed.append(op)
        return True

    def failing(client: Any, op: Any) -> Any:
        if not fails(op):
            return send(client, op)
        if executed:
            send(client, op)
        raise redis.exceptions.TimeoutError("injected: no reply")

    async def afailing(client: Any, op: Any) -> Any:
        if not fails(op):
            return await asend(client, op)
        if executed:
            await asend(client, op)
        raise redis.exceptions.TimeoutError("injected: no reply")

    monkeypatch.setattr(module, "send", failing)
    monkeypatch.setattr(module, "asend", afailing)
    return failed


def command(name: str) -> Callable[[Any], bool]:
    """Matches the command ``name``, alone or in a pipeline."""
    from websession.stores.redis_commands import Batch, Call

    def matches(op: Any) -> bool:
        if isinstance(op, Call):
            return bool(op.args[0] == name)
        return isinstance(op, Batch) and op.calls[0][0] == name

    return matches


@pytest.mark.parametrize("executed", [False, True], ids=["request-lost", "reply-lost"])
@pytest.mark.parametrize("finish", ["retry", "listing"])
def test_cluster_a_revoke_user_that_fails_midway_raises_and_is_finished_later(
    door: Door,
    on_cluster: tuple[Any, RedisStore, Any],
    monkeypatch: pytest.MonkeyPatch,
    executed: bool,
    finish: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The records' deletes fail after the index step: the call raises, and a retry (or the
    next listing) deletes the records the first try left, so none of them stays signed in."""
    storage, store, direct = on_cluster
    browsers = [sign_in(door, storage) for _ in range(3)]
    other = sign_in(door, storage, "grace")
    failed = fail_once(monkeypatch, command("DEL"), executed=executed)
    with pytest.raises(StoreUnavailableError):
        door.call(storage, "revoke_user", "ada")
    assert failed
    if finish == "retry":
        assert door.call(storage, "revoke_user", "ada") == (0 if executed else 3)
    else:
        with caplog.at_level(logging.WARNING, logger="websession"):
            assert door.call(storage, "sessions_of", "ada") == []
        assert caplog.text == ""  # a tombstone is no corrupt entry
    assert [door.get(storage, b.header).is_new for b in browsers] == [True] * 3
    assert door.get(storage, other.header).user == "grace"
    assert direct.hkeys(index_key(store.prefix, "ada")) == [GENERATION_FIELD.encode()]
    indexes = [index_key(store.prefix, user) for user in ("ada", "grace")]
    assert live(store, direct) == sorted([*indexes, store.key(session_id(storage, other))])


@pytest.mark.parametrize("finish", ["retry", "listing"])
def test_cluster_a_revoke_that_fails_midway_raises_and_is_finished_later(
    door: Door, on_cluster: tuple[Any, RedisStore, Any], monkeypatch: pytest.MonkeyPatch, finish: str
) -> None:
    storage, store, direct = on_cluster
    laptop, phone = sign_in(door, storage), sign_in(door, storage)
    keys = [store.storage_key(session_id(storage, b)) for b in (laptop, phone)]
    [device] = [d for d in door.call(storage, "sessions_of", "ada") if d.key == keys[0]]
    failed = fail_once(monkeypatch, command("DEL"))
    with pytest.raises(StoreUnavailableError):
        door.call(storage, "revoke", device, user="ada")
    assert failed
    if finish == "retry":
        assert door.call(storage, "revoke", device, user="ada") is True
    else:
        assert [d.key for d in door.call(storage, "sessions_of", "ada")] == keys[1:]
    assert door.get(storage, laptop.header).is_new and door.get(storage, phone.header).user == "ada"
    assert set(direct.hkeys(index_key(store.prefix, "ada"))) == {GENERATION_FIELD.encode(), keys[1].encode()}


def test_cluster_a_session_whose_revocation_failed_midway_cannot_move(
    door: Door, on_cluster: tuple[Any, RedisStore, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until a retry finishes the revocation, its sessions still read (the read path never
    looks at the index), but none can be carried over to a new id: a tombstone is no entry."""
    storage, store, direct = on_cluster
    browser = sign_in(door, storage)
    fail_once(monkeypatch, command("DEL"))
    with pytest.raises(StoreUnavailableError):
        door.call(storage, "revoke_user", "ada")
    door.request(storage, browser, lambda s: s.regenerate())
    assert browser.header is None  # the cookie was expired: revoked, not moved
    assert live(store, direct) == [index_key(store.prefix, "ada")]
    assert door.call(storage, "revoke_user", "ada") == 0


def test_cluster_a_revocation_left_unfinished_ends_even_the_session_a_retry_keeps(
    door: Door, on_cluster: tuple[Any, RedisStore, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tombstone is a revocation already decided: "sign out everywhere else" after a failed
    "sign out everywhere" still ends the current session, which the first call revoked."""
    storage, store, direct = on_cluster
    here, there = sign_in(door, storage), sign_in(door, storage)
    fail_once(monkeypatch, command("DEL"))
    with pytest.raises(StoreUnavailableError):
        door.call(storage, "revoke_user", "ada")
    assert door.call(storage, "revoke_user", "ada", keep=door.get(storage, here.header)) == 2
    assert door.get(storage, here.header).is_new and door.get(storage, there.header).is_new
    assert live(store, direct) == [index_key(store.prefix, "ada")]


#: How a signed-in session's take (its record leaves with its entry) is started.
TAKES: dict[str, Callable[[Any], None]] = {
    "regenerate": lambda s: s.regenerate(),
    "logout": lambda s: s.logout(),
    "destroy": lambda s: s.destroy(),
}


@pytest.mark.parametrize("take", list(TAKES))
def test_cluster_a_take_that_fails_before_the_record_leaves_the_session_indexed(
    door: Door, on_cluster: tuple[Any, RedisStore, Any], monkeypatch: pytest.MonkeyPatch, take: str
) -> None:
    """The record's GETDEL fails: nothing moved, and the session, still signed in, is still
    listed, so a revocation still ends it."""
    storage, store, _ = on_cluster
    browser = sign_in(door, storage, device="laptop")
    key = store.storage_key(session_id(storage, browser))
    failed = fail_once(monkeypatch, command("GETDEL"))
    with pytest.raises(StoreUnavailableError):
        door.request(storage, browser, TAKES[take])
    assert failed
    assert door.get(storage, browser.header).user == "ada"
    assert [device.key for device in door.call(storage, "sessions_of", "ada")] == [key]
    assert door.call(storage, "revoke_user", "ada") == 1
    assert door.get(storage, browser.header).is_new


@pytest.mark.parametrize("fails", ["GETDEL reply", "HDEL"])
@pytest.mark.parametrize("take", list(TAKES))
def test_cluster_a_take_that_fails_after_the_record_leaves_nothing_signed_in(
    door: Door,
    on_cluster: tuple[Any, RedisStore, Any],
    monkeypatch: pytest.MonkeyPatch,
    take: str,
    fails: str,
) -> None:
    """The record was taken, then the reply or the entry's removal failed: the session is
    gone (signed out, never half-moved), and its stale entry leaves at the next listing."""
    storage, store, direct = on_cluster
    browser = sign_in(door, storage)
    name, executed = ("GETDEL", True) if fails == "GETDEL reply" else ("HDEL", False)
    failed = fail_once(monkeypatch, command(name), executed=executed)
    with pytest.raises(StoreUnavailableError):
        door.request(storage, browser, TAKES[take])
    assert failed
    assert door.get(storage, browser.header).is_new
    assert door.call(storage, "sessions_of", "ada") == []
    assert live(store, direct) == []  # the stale entry pruned; never revoked, so no generation


# -- Upstash runs the same scripts on the same keys -------------------------------------------------


def test_upstash_and_redis_share_one_index(
    door: Door, upstash_server: UpstashRestServer, redis_url: str, redis_prefix: str
) -> None:
    upstash = create_upstash_session_storage(
        cookie=create_cookie(COOKIE, secrets=["s3cret"], max_age=3600),
        url=upstash_server.url,
        token=upstash_server.token,
        prefix=redis_prefix,
    )
    native = make(redis_url, redis_prefix)
    browser = sign_in(door, upstash, device="phone")
    [device] = door.call(native, "sessions_of", "ada")
    assert device.labels == {"device": "phone"}
    assert device.key == session_id(upstash, browser)
    assert door.get(native, browser.header).user == "ada"
    assert door.call(native, "revoke_user", "ada") == 1
    assert door.get(upstash, browser.header).is_new
    close(door, upstash)
    close(door, native)


def test_revoking_a_key_no_store_writes_is_false_and_sends_nothing(
    door: Door, upstash_server: UpstashRestServer, redis_url: str, redis_prefix: str
) -> None:
    """A key that names no record of these stores (a Device made up, or tampered with)."""
    upstash = create_upstash_session_storage(
        cookie=create_cookie(COOKIE, secrets=["s3cret"], max_age=3600),
        url=upstash_server.url,
        token=upstash_server.token,
        prefix=redis_prefix,
    )
    native = make(redis_url, redis_prefix)
    browser = sign_in(door, upstash)
    now = datetime.now(timezone.utc)
    for key in ("not a storage key!", "", GENERATION_FIELD, "ab/../cd"):
        bogus = Device(key, created=now, last_seen=now)
        for storage in (upstash, native):
            mark = len(upstash_server.requests)
            assert door.call(storage, "revoke", bogus, user="ada") is False
            assert len(upstash_server.requests) == mark
    assert door.get(upstash, browser.header).user == "ada"
    assert len(door.call(upstash, "sessions_of", "ada")) == 1
    close(door, upstash)
    close(door, native)


def test_upstash_round_trips(door: Door, upstash_server: UpstashRestServer, redis_prefix: str) -> None:
    storage = create_upstash_session_storage(
        cookie=create_cookie(COOKIE, secrets=["s3cret"], max_age=3600),
        url=upstash_server.url,
        token=upstash_server.token,
        prefix=redis_prefix,
    )
    sign_in(door, storage)  # loads the scripts

    def since(mark: int) -> list[str]:
        return [c[0].upper() for request in upstash_server.requests[mark:] for c in request.commands]

    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.set("a", 1))
    mark = len(upstash_server.requests)
    door.request(storage, browser, lambda s: s.login("ada"))
    assert since(mark) == ["GETEX", "GETDEL", "EVALSHA"]  # the read, then the login: two
    mark = len(upstash_server.requests)
    door.request(storage, browser)
    assert since(mark) == ["GETEX"]
    mark = len(upstash_server.requests)
    assert len(door.call(storage, "sessions_of", "ada")) == 2
    assert door.call(storage, "revoke_user", "ada") == 2
    assert since(mark) == ["EVALSHA", "EVALSHA"]
    close(door, storage)


def test_cluster_round_trips(cluster: tuple[Any, RedisStore, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """What each request costs on Redis Cluster, where no step spans the index and a record
    (a pipeline reaches its nodes together, so it counts once)."""
    import websession.stores.redis.wire as module
    from websession.stores.redis_commands import Call

    storage, _, _ = cluster
    sent: list[str] = []
    original = module.send

    def counted(client: Any, op: Any) -> Any:
        sent.append(type(op).__name__ if not isinstance(op, Call) else str(op.args[0]))
        return original(client, op)

    monkeypatch.setattr(module, "send", counted)
    browser = Browser(COOKIE)
    door = SyncDoor()
    door.request(storage, browser, lambda s: s.set("a", 1))
    del sent[:]
    door.request(storage, browser, lambda s: s.login("ada"))
    assert sent == ["GETEX", "GETDEL", "SET", "Eval"]  # the read, take, record, entry
    del sent[:]
    door.request(storage, browser)
    assert sent == ["GETEX"]
    del sent[:]
    door.request(storage, browser, lambda s: s.regenerate())
    assert sent == ["GETEX", "HMGET", "GETDEL", "HDEL", "SET", "Eval"]
    del sent[:]
    assert len(storage.sessions_of("ada")) == 1
    assert sent == ["HGETALL", "Batch"]
    del sent[:]
    assert storage.revoke_user("ada") == 1
    assert sent == ["Eval", "Batch", "HDEL"]  # tombstones, records, tombstones
    browsers = [sign_in(door, storage) for _ in range(2)]
    session = storage.get_session(browsers[0].header)
    del sent[:]
    assert storage.revoke(session) is True
    assert sent == ["Eval", "DEL", "HDEL"]
    storage.store._run(storage.store._plan_delete(session_id(storage, browsers[1])), "delete")  # ended
    del sent[:]
    assert storage.sessions_of("ada") == []
    assert sent == ["HGETALL", "Batch", "HDEL"]  # the ended session's entry leaves


def test_cluster_hash_layout(redis_cluster_url: str) -> None:
    storage = make(redis_cluster_url, f"users:{uuid.uuid4().hex[:8]}:", layout="hash")
    browser = sign_in(SyncDoor(), storage, device="laptop")
    SyncDoor().request(storage, browser, lambda s: s.regenerate())
    session = storage.get_session(browser.header)
    assert session.user == "ada" and session["theme"] == "dark"
    [device] = storage.sessions_of("ada")
    assert device.labels == {"device": "laptop"}
    assert storage.revoke_user("ada") == 1 and storage.get_session(browser.header).is_new
    storage.close()


# -- given clients, and scripts the server forgot ----------------------------------------------------


def test_given_clients_on_both_doors(redis_url: str, redis_prefix: str) -> None:
    """Clients handed in are driven through redis-py's own pool, not held connections; one
    that decodes replies to text must work the same."""
    cookie = create_cookie(COOKIE, secrets=["s3cret"], max_age=3600)
    sync_client = redis.Redis.from_url(redis_url, decode_responses=True)
    storage = create_redis_session_storage(cookie=cookie, client=sync_client, prefix=redis_prefix)
    browser = sign_in(SyncDoor(), storage, device="laptop")
    SyncDoor().request(storage, browser, lambda s: s.regenerate())
    assert [d.labels for d in storage.sessions_of("ada")] == [{"device": "laptop"}]
    assert storage.store.generation("ada") == 0

    async def main() -> None:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(redis_url)
        astorage = create_redis_session_storage(cookie=cookie, client=client, prefix=redis_prefix)
        session = await astorage.aget_session(browser.header)
        assert session.user == "ada"
        session.regenerate()
        moved = await astorage.acommit_session(session)
        assert moved is not None and EXPIRED not in moved
        assert len(await astorage.asessions_of("ada")) == 1
        assert await astorage.arevoke_user("ada") == 1
        assert await astorage.store.ageneration("ada") == 1
        await client.aclose()

    import asyncio

    asyncio.run(main())
    assert storage.get_session(browser.header).is_new
    sync_client.close()


def test_scripts_the_server_forgot_are_sent_again(private_redis: RedisServer) -> None:
    storage = make(private_redis.url, "t:")
    sign_in(SyncDoor(), storage)
    private_redis.client().script_flush()
    with Monitor(private_redis) as monitor:
        monitor.commands()
        browser = Browser(COOKIE)
        SyncDoor().request(storage, browser, lambda s: s.login("ada"))
        assert monitor.commands() == ["EVALSHA", "EVAL"]  # NOSCRIPT, then the script itself
        SyncDoor().request(storage, Browser(COOKIE), lambda s: s.login("ada"))
        assert monitor.commands() == ["EVALSHA"]
    assert len(storage.sessions_of("ada")) == 3
    storage.close()


def test_upstash_sends_a_script_it_does_not_have_yet(
    door: Door, upstash_private_server: UpstashRestServer
) -> None:
    storage = create_upstash_session_storage(
        cookie=create_cookie(COOKIE, secrets=["s3cret"], max_age=3600),
        url=upstash_private_server.url,
        token=upstash_private_server.token,
    )
    browser = Browser(COOKIE)
    door.request(storage, browser, lambda s: s.login("ada"))
    assert upstash_private_server.commands() == ["EVALSHA", "EVAL"]
    assert [d.key for d in door.call(storage, "sessions_of", "ada")] == [session_id(storage, browser)]
    assert upstash_private_server.commands()[2:] == ["EVALSHA", "EVAL"]
    close(door, storage)


@pytest.mark.parametrize("layout", ["string", "hash"])
def test_a_record_of_another_type_is_taken_as_unreadable(
    door: Door, redis_url: str, redis_prefix: str, direct: redis.Redis, layout: str
) -> None:
    storage = make(redis_url, redis_prefix, layout=layout)
    browser = sign_in(door, storage)
    session = door.get(storage, browser.header)
    key = redis_prefix + session_id(storage, browser)
    direct.delete(key)
    direct.rpush(key, "not a session")
    session.regenerate()
    set_cookie = door.commit(storage, session)
    assert set_cookie is not None and EXPIRED in set_cookie  # nothing readable to move
    assert direct.exists(key) == 0 and door.call(storage, "sessions_of", "ada") == []
    close(door, storage)
