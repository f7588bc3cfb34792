"""Records under a keyed hash of the id (``storage_key_secret``): a leaked dump of the store
holds no id that a cookie could carry.

On every store: with the option, the raw dump (keys, values, and for SQLite the database file
itself) contains none of the live ids, only HMAC-SHA256 digests of them; sessions still work
through create, read, update, regenerate and destroy; a storage with another secret over the
same records finds nothing; listing yields storage keys. Without the option, records stay under
the bare id (the Remix layout).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from datetime import timedelta
from typing import Any

import pytest

from websession import SessionStorage
from websession.stores.base import STORAGE_KEY_CONTEXT

from ..conformance.harness import FakeClock
from .backends import BACKENDS, Backend
from .conftest import make_cookie, request_header

SERVER_KEY = "storage-key-secret-for-tests"
ALL = [pytest.param(b, id=b.name) for b in BACKENDS]


def expected_key(id: str, secret: str = SERVER_KEY) -> str:
    return hmac.new(secret.encode(), STORAGE_KEY_CONTEXT + id.encode(), hashlib.sha256).hexdigest()


def start(storage: Any, data: dict[str, Any]) -> tuple[str, str]:
    session = storage.get_session(None)
    session.update(data)
    header = request_header(storage.commit_session(session))
    assert session.id is not None
    return session.id, header


@pytest.mark.parametrize("backend", ALL)
def test_a_dump_of_the_store_holds_no_live_id(backend: Backend, build: Any) -> None:
    storage = build(backend, storage_key_secret=SERVER_KEY)
    assert storage.store.hashes_ids
    sessions = [start(storage, {"user": n}) for n in range(3)]
    raw = backend.raw(storage)
    dump = raw.dump()
    keys = raw.stored_keys()
    for id, header in sessions:
        assert id.encode() not in dump
        assert expected_key(id) in keys
        assert storage.get_session(header)["user"] == sessions.index((id, header))
    # Changes, regeneration and destruction address the same keyed records.
    id, header = sessions[0]
    session = storage.get_session(header)
    session["cart"] = [1]
    storage.commit_session(session)
    assert dict(storage.get_session(header)) == {"user": 0, "cart": [1]}
    session = storage.get_session(header)
    session.regenerate()
    new_header = request_header(storage.commit_session(session))
    assert storage.get_session(header).is_new
    assert expected_key(id) not in raw.stored_keys()
    assert dict(storage.get_session(new_header)) == {"user": 0, "cart": [1]}
    new_id = storage.get_session(new_header).id
    storage.destroy_session(storage.get_session(new_header))
    assert storage.get_session(new_header).is_new
    # Nothing left behind (other tests may share the table: look at this test's keys only).
    remaining = set(raw.stored_keys())
    assert {expected_key(i) for i, _ in sessions[1:]} <= remaining
    assert expected_key(id) not in remaining and expected_key(new_id) not in remaining


@pytest.mark.parametrize("backend", ALL)
def test_another_secret_finds_nothing_and_listing_yields_keys(backend: Backend, build: Any) -> None:
    storage = build(backend, storage_key_secret=SERVER_KEY)
    id, header = start(storage, {"user": 1})
    # The same records and connections, keyed with another secret.
    rekeyed = copy.copy(storage.store)
    rekeyed._key_mac = hmac.new(b"another-secret", STORAGE_KEY_CONTEXT, hashlib.sha256)
    assert SessionStorage(cookie=storage.cookie, store=rekeyed).get_session(header).is_new
    assert storage.get_session(header)["user"] == 1
    if backend.name != "memcache":  # memcached cannot list its keys
        listed = [key for key, _ in storage.store.scan()]
        assert expected_key(id) in listed and id not in listed


@pytest.mark.parametrize("backend", ALL)
def test_without_the_option_records_stay_under_the_bare_id(backend: Backend, build: Any) -> None:
    storage = build(backend)
    assert not storage.store.hashes_ids
    id, _ = start(storage, {"user": 1})
    assert id in backend.raw(storage).stored_keys()


def test_file_store_purges_expired_records_under_hashed_keys(build: Any) -> None:
    clock = FakeClock()
    backend = next(b for b in BACKENDS if b.name == "file")
    storage = build(backend, storage_key_secret=SERVER_KEY, clock=clock, cookie=make_cookie(max_age=10))
    start(storage, {"user": 1})
    live_id, _ = start(storage, {"user": 2})
    assert len(backend.raw(storage).stored_keys()) == 2
    clock.advance(5)
    session = storage.get_session(storage.cookie.serialize(live_id).split(";")[0])
    session["seen"] = True
    storage.commit_session(session)
    clock.advance(6)
    assert storage.store.purge_expired() == 1
    assert backend.raw(storage).stored_keys() == [expected_key(live_id)]


def test_an_empty_storage_key_secret_is_refused() -> None:
    from websession.stores.memory import MemoryStore

    with pytest.raises(ValueError):
        MemoryStore(storage_key_secret="")
    assert MemoryStore(storage_key_secret=b"\x00" * 32).hashes_ids


@pytest.mark.parametrize("backend", ALL)
def test_maintenance_hooks_address_the_keyed_records(backend: Backend, build: Any) -> None:
    """``websession show``/``rm`` (peek, delete) take real ids, and ``migrate`` into a hashed
    store (write) lands under the keyed hash, where the cookie finds it."""
    from websession import generate_id

    storage = build(backend, storage_key_secret=SERVER_KEY)
    store = storage.store
    id, _ = start(storage, {"user": 1})
    peeked = store.peek(id)
    assert peeked is not None and peeked.data == {"user": 1}
    migrated = generate_id(store.clock().timestamp())
    try:
        assert store.write(migrated, {"user": 2}, store.clock() + timedelta(hours=1))
    except NotImplementedError:
        pytest.skip(f"{backend.name} cannot write records under given ids")
    keys = backend.raw(storage).stored_keys()
    assert expected_key(migrated) in keys and migrated not in keys
    assert storage.get_session(storage.cookie.serialize(migrated).split(";")[0])["user"] == 2
    store.delete(migrated)
    assert expected_key(migrated) not in backend.raw(storage).stored_keys()
