"""The commit table and the expiry rules, on the memory store with a fake clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from websession import CookieTooLargeError, create_cookie, create_cookie_session_storage
from websession.storage import SessionStorage
from websession.stores.memory import MemoryStore

from .conformance.harness import FakeClock


def make(clock: FakeClock, **cookie_options: Any) -> SessionStorage:
    options = {"secrets": ["k"], "max_age": 60, **cookie_options}
    return SessionStorage(cookie=create_cookie("s", **options), store=MemoryStore(clock=clock))


def pair(header: str | None) -> str:
    assert header is not None
    return header.split(";")[0]


def test_expiry_passed_to_the_store_comes_from_max_age_at_commit_time() -> None:
    clock = FakeClock()
    storage = make(clock)
    session = storage.get_session(None)
    session["a"] = 1
    clock.advance(30)  # time spent in the request counts from the commit
    header = storage.commit_session(session)
    record = storage.store.read(session.id, None)  # type: ignore[arg-type]
    assert record is not None and record.expires is not None
    assert (record.expires - clock.now).total_seconds() == 60
    assert "Max-Age=60" in (header or "")


def test_expires_option_is_used_when_there_is_no_max_age() -> None:
    clock = FakeClock()
    at = clock.now.replace(microsecond=0)
    storage = make(clock, max_age=None, expires=at.replace(year=at.year + 1))
    session = storage.get_session(None)
    session["a"] = 1
    storage.commit_session(session)
    record = storage.store.read(session.id, None)  # type: ignore[arg-type]
    assert record is not None and record.expires == at.replace(year=at.year + 1)


def test_browser_session_cookie_uses_the_store_default_ttl() -> None:
    clock = FakeClock()
    storage = SessionStorage(
        cookie=create_cookie("s", secrets=["k"]), store=MemoryStore(clock=clock, default_ttl=10)
    )
    session = storage.get_session(None)
    session["a"] = 1
    header = pair(storage.commit_session(session))
    clock.advance(11)
    assert storage.get_session(header).is_new


def test_remember_me_override_moves_the_expiry_without_a_data_change() -> None:
    clock = FakeClock()
    storage = make(clock, max_age=60)
    session = storage.get_session(None)
    session["a"] = 1
    header = pair(storage.commit_session(session))
    again = storage.get_session(header)
    set_cookie = storage.commit_session(again, max_age=3600)
    assert set_cookie is not None and "Max-Age=3600" in set_cookie
    clock.advance(120)
    assert storage.get_session(header)["a"] == 1


def test_update_of_a_record_that_expired_meanwhile_is_not_written() -> None:
    clock = FakeClock()
    storage = make(clock, max_age=10)
    session = storage.get_session(None)
    session["a"] = 1
    header = pair(storage.commit_session(session))
    loaded = storage.get_session(header)
    clock.advance(11)
    loaded["b"] = 2
    set_cookie = storage.commit_session(loaded)
    assert set_cookie is not None and "Expires=Thu, 01 Jan 1970" in set_cookie
    assert len(storage.store) == 0  # type: ignore[arg-type]


def test_second_commit_in_one_request_applies_only_new_changes() -> None:
    clock = FakeClock()
    storage = make(clock)
    session = storage.get_session(None)
    session["a"] = 1
    header = pair(storage.commit_session(session))
    loaded = storage.get_session(header)
    loaded["b"] = 2
    storage.commit_session(loaded)
    assert not loaded.modified
    loaded["c"] = 3
    storage.commit_session(loaded)
    assert dict(storage.get_session(header)) == {"a": 1, "b": 2, "c": 3}


def test_cookie_storage_refuses_more_than_4096_bytes() -> None:
    storage = create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"]))
    session = storage.get_session(None)
    session["blob"] = "x" * 2900
    assert len(storage.commit_session(session) or "") <= 4096
    session = storage.get_session(None)
    session["blob"] = "x" * 3100
    with pytest.raises(CookieTooLargeError):
        storage.commit_session(session)


def test_cookie_storage_unchanged_and_not_rolling_sends_nothing() -> None:
    storage = create_cookie_session_storage(
        cookie=create_cookie("s", secrets=["k"], max_age=60), rolling=False
    )
    session = storage.get_session(None)
    session["a"] = 1
    header = pair(storage.commit_session(session))
    assert storage.commit_session(storage.get_session(header)) is None


def test_absolute_timeout_ends_an_active_session() -> None:
    clock = FakeClock()
    storage = SessionStorage(
        cookie=create_cookie("s", secrets=["k"], max_age=60),
        store=MemoryStore(clock=clock),
        absolute_timeout=150,
    )
    session = storage.get_session(None)
    session["user"] = 1
    header = pair(storage.commit_session(session))
    for _ in range(4):  # active every 40 s: the idle timeout alone would never end it
        clock.advance(40)
        active = storage.get_session(header)
        if active.is_new:
            break
        storage.commit_session(active)
    assert active.is_new
    record_lifetimes = [r.expires for _, r in storage.store.scan()]
    assert record_lifetimes == []  # the store's expiry was capped at the absolute deadline


def test_absolute_timeout_caps_the_store_expiry_from_the_start() -> None:
    clock = FakeClock()
    storage = SessionStorage(
        cookie=create_cookie("s", secrets=["k"], max_age=3600),
        store=MemoryStore(clock=clock),
        absolute_timeout=100,
    )
    session = storage.get_session(None)
    session["user"] = 1
    storage.commit_session(session)
    [(_, record)] = list(storage.store.scan())
    assert record.expires is not None and (record.expires - clock.now).total_seconds() <= 100


def test_binding_refuses_a_cookie_replayed_from_another_client() -> None:
    clock = FakeClock()
    storage = make(clock)
    session = storage.get_session(None, binding="Firefox/130")
    session["user"] = 1
    header = pair(storage.commit_session(session))
    assert storage.get_session(header, binding="Firefox/130")["user"] == 1
    stolen = storage.get_session(header, binding="curl/8")
    assert stolen.is_new and stolen.stale_cookie
    assert storage.get_session(header).is_new  # unbound reads refuse bound cookies too


@pytest.mark.parametrize(
    "factory",
    ["memory", "file", "sqlite"],
)
def test_an_explicit_ttl_is_the_record_lifetime_whatever_the_cookie_says(factory: str, tmp_path: Any) -> None:
    from websession import (
        create_file_session_storage,
        create_memory_session_storage,
        create_sqlite_session_storage,
    )

    clock = FakeClock()
    cookie = create_cookie("s", secrets=["k"], max_age=3600)
    make_storage: dict[str, Any] = {
        "memory": lambda **o: create_memory_session_storage(**o),
        "file": lambda **o: create_file_session_storage(dir=tmp_path / "f", **o),
        "sqlite": lambda **o: create_sqlite_session_storage(path=tmp_path / "s.db", **o),
    }
    storage = make_storage[factory](cookie=cookie, default_ttl=120, clock=clock)
    session = storage.get_session(None)
    session["a"] = 1
    header = storage.commit_session(session)
    assert "Max-Age=3600" in header  # the cookie keeps its own lifetime
    record = storage.store.peek(session.id)
    assert record is not None and record.expires is not None  # files keep milliseconds
    assert abs((record.expires - (clock.now + timedelta(seconds=120))).total_seconds()) < 0.001
    clock.advance(121)
    assert storage.get_session(pair(header)).is_new


def test_without_a_ttl_the_cookie_lifetime_is_the_record_lifetime() -> None:
    from websession import create_memory_session_storage

    clock = FakeClock()
    storage = create_memory_session_storage(
        cookie=create_cookie("s", secrets=["k"], max_age=3600), clock=clock
    )
    session = storage.get_session(None)
    session["a"] = 1
    storage.commit_session(session)
    record = storage.store.peek(session.id)  # type: ignore[arg-type]
    assert record is not None and record.expires == clock.now + timedelta(seconds=3600)


def test_an_explicit_ttl_is_still_capped_by_the_absolute_timeout() -> None:
    from websession import create_memory_session_storage

    clock = FakeClock()
    storage = create_memory_session_storage(
        cookie=create_cookie("s", secrets=["k"], max_age=3600),
        default_ttl=600,
        absolute_timeout=300,
        clock=clock,
    )
    session = storage.get_session(None)
    session["a"] = 1
    storage.commit_session(session)
    record = storage.store.peek(session.id)  # type: ignore[arg-type]
    assert record is not None and record.expires is not None
    assert (record.expires - clock.now).total_seconds() <= 300
