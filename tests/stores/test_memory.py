from __future__ import annotations

from websession.stores.memory import MemoryStore

from ..conformance.harness import FakeClock


def test_max_entries_evicts_the_least_recently_used() -> None:
    store = MemoryStore(max_entries=2)
    a = store.create({"a": 1}, None)
    b = store.create({"b": 1}, None)
    store.read(a, None)  # a is now more recent than b
    c = store.create({"c": 1}, None)
    assert store.read(b, None) is None
    assert store.read(a, None) is not None and store.read(c, None) is not None
    assert len(store) == 2


def test_records_are_copies() -> None:
    store = MemoryStore()
    data = {"list": [1]}
    id = store.create(data, None)
    data["list"].append(2)
    record = store.read(id, None)
    assert record is not None and record.data == {"list": [1]}


def test_purge_expired() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    store.create({"a": 1}, clock.now)
    keep = store.create({"b": 1}, None)
    assert store.purge_expired() == 1
    assert [id for id, _ in store.scan()] == [keep]
