"""The maintenance hooks every store offers to the ``websession`` command: scan, count, peek,
write, write_many and purge_expired (see the contract in ``websession.stores.base``).

They are sync only, so these tests do not run through the two doors. A store that does not
offer a hook yet is skipped here with the reason (the command then fails with one line for
that store); the cookie store keeps no records at all. Ids come from ``store.new_id()``: the
ids a store accepts differ (remix-v3 ids are UUIDs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest

from tests.timing import current_test_watch
from websession import create_cookie
from websession.maintenance import migrate, supports_write
from websession.stores.base import Record, Store

from .cases import StoreCase
from .conftest import COOKIE_NAME, SECRETS
from .harness import FakeClock, Options
from .test_conformance import FIDELITY

T = TypeVar("T")

#: Stores keep expiries to the millisecond (file) or the second (servers with native TTL).
TOLERANCE = timedelta(seconds=1.5)


@pytest.fixture
def storage(request: pytest.FixtureRequest, case: StoreCase, clock: Any) -> Iterator[Any]:
    if not case.server_side:
        pytest.skip("cookie storage keeps no records to maintain")
    cookie = create_cookie(COOKIE_NAME, secrets=SECRETS[:1], max_age=3600)
    made = case.make(request, Options(cookie, clock))
    yield made
    made.close()


@pytest.fixture
def store(storage: Any) -> Store:
    return storage.store


def hook(store: Store, call: Callable[[], T]) -> T:
    """Call a maintenance hook; skip (with the store's own message) when the store lacks it."""
    try:
        return call()
    except NotImplementedError as exc:
        pytest.skip(f"{store.kind} store: {exc}")


def scanned(store: Store) -> dict[str, Record]:
    return hook(store, lambda: dict(store.scan()))


def peeked(store: Store, id: str, expires: datetime | None) -> Record | None:
    """``store.peek(id)``; skip when the store cannot know the expiry at all: it keeps the
    default peek and its read reports none (callbacks in the Remix style return data only)."""
    record = store.peek(id)
    if (
        record is not None
        and record.expires is None
        and expires is not None
        and type(store).peek is Store.peek
    ):
        pytest.skip(f"{store.kind} store: its read reports no expiry and it does not override peek")
    return record


def close_to(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    # Stores with a server-side TTL rebuild the expiry from the server's clock: allow the
    # test's own wall time too, which a loaded machine stretches.
    return abs(a - b) <= TOLERANCE + timedelta(seconds=current_test_watch.elapsed)


def test_scan_yields_every_live_record_with_its_expiry(store: Store) -> None:
    now = store.clock()
    in_an_hour = now + timedelta(hours=1)
    a = store.create({"n": 1}, in_an_hour)
    b = store.create(FIDELITY, None)
    c = store.create({"n": 3}, in_an_hour)
    store.delete(c)
    found = scanned(store)
    assert set(found) == {a, b}
    assert found[a].data == {"n": 1} and close_to(found[a].expires, in_an_hour)
    assert found[b].data == FIDELITY and found[b].expires is None


def test_scan_does_not_touch_records(store: Store) -> None:
    expires = store.clock() + timedelta(minutes=10)
    id = store.create({"n": 1}, expires)
    scanned(store)
    # read(id, None) may not know the expiry (Redis answers GET without the TTL): peek does.
    record = peeked(store, id, expires)
    assert record is not None and close_to(record.expires, expires)


def test_peek_reports_data_and_expiry_without_touching(store: Store) -> None:
    expires = store.clock() + timedelta(minutes=10)
    id = store.create({"n": 1}, expires)
    forever = store.create({"n": 2}, None)
    for _ in range(2):
        record = peeked(store, id, expires)
        assert record is not None and record.data == {"n": 1} and close_to(record.expires, expires)
    record = store.peek(forever)
    assert record is not None and record.data == {"n": 2} and record.expires is None
    store.delete(id)
    assert store.peek(id) is None
    assert store.peek(store.new_id()) is None


def test_count_agrees_with_scan(store: Store) -> None:
    for n in range(7):
        store.create({"n": n}, store.clock() + timedelta(hours=1))
    assert hook(store, store.count) == len(scanned(store)) == 7


def test_expired_records_are_not_scanned_nor_counted(store: Store, clock: Any) -> None:
    if not isinstance(clock, FakeClock):
        pytest.skip("the store expires records on the server's clock")
    live = store.create({"live": True}, clock() + timedelta(hours=1))
    store.create({"live": False}, clock() + timedelta(seconds=10))
    clock.advance(20)
    assert set(scanned(store)) == {live}
    assert hook(store, store.count) == 1


def test_write_keeps_the_id_the_data_and_the_expiry(store: Store) -> None:
    id = store.new_id()
    expires = store.clock() + timedelta(minutes=30)
    assert hook(store, lambda: store.write(id, FIDELITY, expires)) is True
    record = peeked(store, id, expires)
    assert record is not None and record.data == FIDELITY and close_to(record.expires, expires)
    assert id in scanned(store)


def test_a_written_record_serves_its_cookie(storage: Any, store: Store) -> None:
    id = store.new_id()
    hook(store, lambda: store.write(id, {"user_id": 42}, store.clock() + timedelta(hours=1)))
    header = storage.cookie.serialize(id).split(";")[0]
    session = storage.get_session(header)
    assert not session.is_new and session.id == id and session["user_id"] == 42
    session["more"] = 1
    storage.commit_session(session)
    assert store.read(id, None).data == {"user_id": 42, "more": 1}


def test_write_replaces_unless_told_to_keep(store: Store) -> None:
    id = store.new_id()
    hook(store, lambda: store.write(id, {"v": 1}, None))
    assert store.write(id, {"v": 2}, None, replace=False) is False
    assert store.read(id, None).data == {"v": 1}
    assert store.write(id, {"v": 3}, None) is True
    assert store.read(id, None).data == {"v": 3}


def test_write_of_an_expired_record_writes_nothing(store: Store) -> None:
    id = store.new_id()
    past = store.clock() - timedelta(seconds=5)
    assert hook(store, lambda: store.write(id, {"v": 1}, past)) is False
    assert store.read(id, None) is None
    assert id not in scanned(store)


def test_write_many_counts_what_it_wrote(store: Store) -> None:
    now = store.clock()
    kept = store.new_id()
    hook(store, lambda: store.write(kept, {"v": "target"}, None))
    batch = [(store.new_id(), Record({"n": n}, now + timedelta(hours=1))) for n in range(5)]
    batch.append((store.new_id(), Record({"dead": True}, now - timedelta(seconds=1))))
    batch.append((kept, Record({"v": "source"}, None)))
    assert store.write_many(batch, replace=False) == 5
    assert store.read(kept, None).data == {"v": "target"}
    assert hook(store, store.count) == 6
    assert store.write_many(batch[:2] + batch[-1:]) == 3
    assert store.read(kept, None).data == {"v": "source"}


def test_purge_expired_removes_only_expired_records(store: Store, clock: Any) -> None:
    if store.native_ttl and type(store).purge_expired is Store.purge_expired:
        assert store.purge_expired() == 0
        return
    # Stores without native TTL, and DynamoDB (whose TTL deletes a day or two late), purge.
    if not isinstance(clock, FakeClock):
        pytest.skip("needs a clock the test can move")
    live = store.create({"live": True}, clock() + timedelta(hours=1))
    for _ in range(3):
        store.create({"live": False}, clock() + timedelta(seconds=10))
    clock.advance(20)
    assert hook(store, store.purge_expired) == 3
    assert store.purge_expired() == 0
    assert set(scanned(store)) == {live}


def test_migrate_into_this_store_keeps_ids_and_expiries(store: Store) -> None:
    from websession.stores.memory import MemoryStore

    if not supports_write(store):
        pytest.skip(f"{store.kind} store: no write()")
    source = MemoryStore(clock=store.clock)
    now = store.clock()
    # Ids this store accepts (remix-v3 ids are UUIDs), as its own sessions would have.
    ids = {store.new_id(): n for n in range(25)}
    for id, n in ids.items():
        source.write(id, {"n": n}, now + timedelta(minutes=n + 1))
    report = hook(store, lambda: migrate(source, store, batch_size=10))
    assert report.copied == 25
    found = scanned(store)
    for id, n in ids.items():
        assert found[id].data == {"n": n}
        assert close_to(found[id].expires, now + timedelta(minutes=n + 1))
