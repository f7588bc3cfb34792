"""Session fixation and hijack defence, and the two timeouts, on every store.

- regenerate() (at sign-in) moves the data to a new id and deletes the old record;
- an unknown, expired or destroyed id is never adopted: the next commit issues a new id;
- the idle timeout (the record lifetime, refreshed by rolling) and the absolute timeout (from
  the id's creation time) are enforced by the server: a cookie replayed after either gives a
  fresh session, whatever the browser would have done;
- sealed cookie storage enforces both timeouts too; signed cookie storage refuses to pretend.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from tests.timing import Stopwatch

from websession import (
    ConfigurationError,
    SessionStorage,
    create_cookie,
    create_cookie_session_storage,
    create_session_storage,
    generate_id,
)

from ..conformance.harness import FakeClock
from .backends import BACKENDS, Backend
from .conftest import COOKIE_NAME, Runner, make_cookie, request_header

ALL = [pytest.param(b, id=b.name) for b in BACKENDS]


def start(storage: Any, data: dict[str, Any]) -> str:
    session = storage.get_session(None)
    session.update(data)
    return request_header(storage.commit_session(session))


def id_of(header: str, storage: Any) -> Any:
    verified = storage.cookie.read(header)
    return None if verified is None else verified.value


@pytest.mark.parametrize("door", ["sync", "async"])
@pytest.mark.parametrize("backend", ALL)
def test_regenerate_deletes_the_old_record(backend: Backend, door: str, build: Any, arun: Runner) -> None:
    storage = build(backend)
    get = storage.get_session if door == "sync" else lambda h: arun.run(storage.aget_session(h))
    commit = storage.commit_session if door == "sync" else lambda s: arun.run(storage.acommit_session(s))
    anonymous = start(storage, {"cart": [1]})
    old_id = id_of(anonymous, storage)
    session = get(anonymous)
    session.regenerate()
    session["user"] = "alice"  # sign-in
    signed_in = request_header(commit(session))
    new_id = id_of(signed_in, storage)
    assert new_id != old_id
    assert storage.store.read(old_id, None) is None
    assert storage.store.storage_key(old_id) not in backend.raw(storage).stored_keys()
    assert get(anonymous).is_new  # the fixated cookie leads nowhere
    assert dict(get(signed_in)) == {"cart": [1], "user": "alice"}


@pytest.mark.parametrize("backend", ALL)
def test_unknown_expired_and_destroyed_ids_are_never_adopted(backend: Backend, build: Any) -> None:
    clock = FakeClock()
    storage = build(backend, cookie=make_cookie(max_age=10), clock=clock, rolling=False)
    keys = backend.raw(storage).stored_keys

    def adopts(header: str) -> bool:
        """Load the session the header names, write to it, and tell whether the old id stayed."""
        session = storage.get_session(header)
        assert session.is_new and len(session) == 0
        session["user"] = "mallory"
        new_header = request_header(storage.commit_session(session))
        return id_of(new_header, storage) == id_of(header, storage)

    planted = generate_id(clock().timestamp())
    planted_header = storage.cookie.serialize(planted).split(";")[0]
    assert not adopts(planted_header)
    assert storage.store.storage_key(planted) not in keys()

    if backend.fake_clock:  # native-TTL stores: see test_server_ttls_end_idle_sessions
        expired = start(storage, {"user": "bob"})
        clock.advance(11)
        assert not adopts(expired)
        assert storage.store.read(id_of(expired, storage), None) is None

    destroyed = start(storage, {"user": "carol"})
    storage.destroy_session(storage.get_session(destroyed))
    assert not adopts(destroyed)
    assert storage.store.storage_key(id_of(destroyed, storage)) not in keys()


FAKE_CLOCK = [pytest.param(b, id=b.name) for b in BACKENDS if b.fake_clock]
NATIVE_TTL = [b for b in BACKENDS if not b.fake_clock]


@pytest.mark.parametrize("backend", FAKE_CLOCK)
def test_idle_timeout_is_enforced_by_the_server(backend: Backend, build: Any) -> None:
    clock = FakeClock()
    storage = build(backend, cookie=make_cookie(max_age=10), clock=clock)
    header = start(storage, {"user": 1})
    for _ in range(3):  # active: every request rolls the lifetime forward
        clock.advance(6)
        session = storage.get_session(header)
        assert session["user"] == 1
        storage.commit_session(session)
    clock.advance(11)  # idle longer than the lifetime; the replayed cookie is dead
    assert storage.get_session(header).is_new


def test_server_ttls_end_idle_sessions(build: Any) -> None:
    """Stores whose server expires records (Redis, Upstash, memcached), in real time: all of
    them at once, so the suite waits for one lifetime, not one per store."""
    storages = [build(backend, cookie=make_cookie(max_age=2)) for backend in NATIVE_TTL]
    headers = [start(storage, {"user": 1}) for storage in storages]
    watches = [Stopwatch() for _ in storages]  # each record's 2 s start at its last commit
    for _ in range(2):  # active: each request rolls the server's TTL forward
        time.sleep(0.8)
        for storage, header, watch in zip(storages, headers, watches, strict=True):
            session = storage.get_session(header)
            # A machine stalled past the lifetime proves nothing about rolling either way.
            assert session.get("user") == 1 or watch.elapsed >= 2, storage
            storage.commit_session(session)
            watch.started = time.monotonic()
    time.sleep(3.1)  # idle past the lifetime
    for storage, header in zip(storages, headers, strict=True):
        session = storage.get_session(header)
        assert session.is_new, storage
        session["user"] = "mallory"
        new_header = request_header(storage.commit_session(session))
        assert id_of(new_header, storage) != id_of(header, storage)  # the expired id is not adopted


@pytest.mark.parametrize("backend", ALL)
def test_absolute_timeout_ends_an_active_session(backend: Backend, build: Any) -> None:
    clock = FakeClock()
    storage = build(backend, cookie=make_cookie(max_age=30), clock=clock, absolute_timeout=60)
    header = start(storage, {"user": 1})
    id = id_of(header, storage)
    for _ in range(2):
        clock.advance(25)
        session = storage.get_session(header)
        assert session["user"] == 1
        session["seen"] = clock().isoformat()  # active and changing
        storage.commit_session(session)
        record = storage.store.read(id, None)
        # The stored expiry never reaches past the absolute deadline (stores with native TTL
        # do not report it on a plain read; their TTL is computed from the same expiry).
        deadline = storage._deadline(id, clock())
        assert record is not None
        assert record.expires is None if not backend.fake_clock else record.expires <= deadline
    clock.advance(11)  # 61 s after sign-in, 11 s after the last request
    assert storage.get_session(header).is_new


def test_absolute_timeout_refuses_ids_that_carry_no_creation_time(caplog: pytest.LogCaptureFixture) -> None:
    db: dict[str, dict[str, Any]] = {}

    def create_data(data: Any, expires: Any) -> str:
        id = f"custom-{len(db)}"
        db[id] = dict(data)
        return id

    storage = create_session_storage(
        cookie=make_cookie(),
        create_data=create_data,
        read_data=db.get,
        update_data=lambda id, data, expires: db.__setitem__(id, dict(data)),
        delete_data=lambda id: db.pop(id, None),
    )
    bounded = SessionStorage(cookie=storage.cookie, store=storage.store, absolute_timeout=60)
    header = start(storage, {"user": 1})
    assert storage.get_session(header)["user"] == 1  # without an absolute timeout it works
    caplog.set_level(logging.WARNING, logger="websession")
    assert bounded.get_session(header).is_new  # with one, an undated id cannot prove its age
    assert any("absolute_timeout" in r.getMessage() for r in caplog.records)


def test_sealed_cookie_storage_enforces_both_timeouts_on_replayed_cookies() -> None:
    clock = FakeClock()
    storage = create_cookie_session_storage(
        cookie=create_cookie(COOKIE_NAME, max_age=10),
        encryption_keys=["k" * 32],
        absolute_timeout=25,
        clock=clock,
    )
    first = start(storage, {"user": 1})
    clock.advance(11)
    assert storage.get_session(first).is_new  # idle: the copied cookie has expired
    header = start(storage, {"user": 2})
    for _ in range(3):
        clock.advance(7)
        session = storage.get_session(header)
        assert session["user"] == 2
        header = request_header(storage.commit_session(session))  # rolled, re-sealed
    clock.advance(5)  # 26 s after the start, 5 s after the last request
    assert storage.get_session(header).is_new
    # default_ttl gives a server-side idle timeout to a browser-session cookie (no Max-Age).
    session_cookie = create_cookie_session_storage(
        cookie=create_cookie(COOKIE_NAME), encryption_keys=["k" * 32], default_ttl=10, clock=clock
    )
    header = start(session_cookie, {"user": 3})
    clock.advance(11)
    assert session_cookie.get_session(header).is_new


def test_signed_cookie_storage_refuses_timeouts_it_cannot_enforce() -> None:
    for options in ({"absolute_timeout": 60}, {"default_ttl": 60}):
        with pytest.raises(ConfigurationError):
            create_cookie_session_storage(cookie=make_cookie(), **options)
