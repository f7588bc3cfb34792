"""The maintenance hooks every store offers to the ``websession`` command: scan, count, write,
write_many and purge_expired (see the contract in ``websession.stores.base``).

They are sync only, so these tests do not run through the two doors. A store that does not
offer a hook yet is skipped here with the reason (the command then fails with one line for
that store); the cookie store keeps no records at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest

from websession import create_cookie, generate_id
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


def close_to(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= TOLERANCE


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
    record = store.read(id, None)
    assert record is not None and close_to(record.expires, expires)


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
    id = generate_id()
    expires = store.clock() + timedelta(minutes=30)
    assert hook(store, lambda: store.write(id, FIDELITY, expires)) is True
    record = store.read(id, None)
    assert record is not None and record.data == FIDELITY and close_to(record.expires, expires)
    assert id in scanned(store)


def test_a_written_record_serves_its_cookie(storage: Any, store: Store) -> None:
    id = generate_id()
    hook(store, lambda: store.write(id, {"user_id": 42}, store.clock() + timedelta(hours=1)))
    header = storage.cookie.serialize(id).split(";")[0]
    session = storage.get_session(header)
    assert not session.is_new and session.id == id and session["user_id"] == 42
    session["more"] = 1
    storage.commit_session(session)
    assert store.read(id, None).data == {"user_id": 42, "more": 1}


def test_write_replaces_unless_told_to_keep(store: Store) -> None:
    id = generate_id()
    hook(store, lambda: store.write(id, {"v": 1}, None))
    assert store.write(id, {"v": 2}, None, replace=False) is False
    assert store.read(id, None).data == {"v": 1}
    assert store.write(id, {"v": 3}, None) is True
    assert store.read(id, None).data == {"v": 3}


def test_write_of_an_expired_record_writes_nothing(store: Store) -> None:
    id = generate_id()
    past = store.clock() - timedelta(seconds=5)
    assert hook(store, lambda: store.write(id, {"v": 1}, past)) is False
    assert store.read(id, None) is None
    assert id not in scanned(store)


def test_write_many_counts_what_it_wrote(store: Store) -> None:
    now = store.clock()
    kept = generate_id()
    hook(store, lambda: store.write(kept, {"v": "target"}, None))
    batch = [(generate_id(), Record({"n": n}, now + timedelta(hours=1))) for n in range(5)]
    batch.append((generate_id(), Record({"dead": True}, now - timedelta(seconds=1))))
    batch.append((kept, Record({"v": "source"}, None)))
    assert store.write_many(batch, replace=False) == 5
    assert store.read(kept, None).data == {"v": "target"}
    assert hook(store, store.count) == 6
    assert store.write_many(batch[:2] + batch[-1:]) == 3
    assert store.read(kept, None).data == {"v": "source"}


def test_purge_expired_removes_only_expired_records(store: Store, clock: Any) -> None:
    if store.native_ttl:
        assert store.purge_expired() == 0
        return
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
    ids = {source.create({"n": n}, now + timedelta(minutes=n + 1)): n for n in range(25)}
    report = hook(store, lambda: migrate(source, store, batch_size=10))
    assert report.copied == 25
    found = scanned(store)
    for id, n in ids.items():
        assert found[id].data == {"n": n}
        assert close_to(found[id].expires, now + timedelta(minutes=n + 1))
