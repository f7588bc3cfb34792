"""The cookie storage factory and its options, and the commit of an unchanged rolling session."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from websession import (
    ConfigurationError,
    CookieTooLargeError,
    StorageOptions,
    create_cookie,
    create_cookie_session_storage,
    open_store,
)
from websession.storage import CookieSessionStorage

from ..conformance.harness import FakeClock

KEY = "k" * 32


def signed(**options: Any) -> CookieSessionStorage:
    return create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"], max_age=60), **options)


def pair(header: str | None) -> str:
    assert header is not None
    return header.split(";")[0]


# -- the factory ------------------------------------------------------------------------------


def test_the_shared_options_reach_the_storage() -> None:
    clock = FakeClock()
    shared = StorageOptions(rolling=False, save_uninitialized=True, clock=clock, codec="tagged")
    storage = signed(**shared)
    assert (storage.rolling, storage.save_uninitialized, storage.clock) == (False, True, clock)
    assert not storage.codec.plain


def test_ttl_and_its_older_spelling_seal_the_lifetime() -> None:
    cookie = create_cookie("s", max_age=3600)
    assert create_cookie_session_storage(cookie=cookie, encryption_keys=[KEY], ttl=60).default_ttl == 60.0
    assert (
        create_cookie_session_storage(cookie=cookie, encryption_keys=[KEY], default_ttl=60).default_ttl == 60
    )
    assert create_cookie_session_storage(cookie=cookie, encryption_keys=[KEY], ttl=None).default_ttl is None


@pytest.mark.parametrize("option", [{"ttl": 60}, {"default_ttl": 60}, {"absolute_timeout": 60}])
def test_signed_cookies_refuse_server_side_timeouts(option: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="cannot enforce"):
        signed(**option)


def test_storage_key_secret_is_refused_it_has_no_store_to_key() -> None:
    with pytest.raises(ConfigurationError, match="storage_key_secret"):
        signed(storage_key_secret="x")
    assert signed(storage_key_secret=None).rolling  # None: the option is off


def test_unknown_keywords_are_refused_as_python_refuses_them() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'roling'"):
        signed(roling=False)
    with pytest.raises(TypeError, match="not both"):
        create_cookie_session_storage(cookie=create_cookie("s"), encryption_keys=[KEY], ttl=1, default_ttl=1)


def test_urls_take_the_shared_options() -> None:
    storage = open_store(f"cookie://?encryption_keys={KEY}&ttl=7&absolute_timeout=9&rolling=false")
    assert storage.default_ttl == 7.0  # type: ignore[attr-defined]
    assert storage.absolute_timeout == timedelta(seconds=9)  # type: ignore[attr-defined]
    assert storage.rolling is False


# -- an unchanged rolling session goes back as it came ---------------------------------------


def resent(storage: CookieSessionStorage, header: str, **overrides: Any) -> str | None:
    return storage.commit_session(storage.get_session(header), **overrides)


@pytest.mark.parametrize("codec", [None, "tagged"])
def test_the_rolled_header_is_the_whole_commits_header(codec: str | None) -> None:
    clock = FakeClock()
    storage = signed(clock=clock, codec=codec)
    session = storage.get_session(None)
    session["a"] = [1, 2]
    first = storage.commit_session(session)
    assert first is not None
    for _ in range(2):  # the second time from the remembered header
        again = storage.get_session(pair(first))
        assert storage.commit_session(again) == first
        assert again.record is not None and again.record.expires == clock.now + timedelta(seconds=60)
        assert again.record.data == {"a": [1, 2]} and again.is_new is False
    # A header forced through the whole commit (an override equal to the cookie's own) is the same.
    assert resent(storage, pair(first), path="/") == first


def test_a_max_age_of_zero_expires_the_cookie_instead() -> None:
    storage = create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"], max_age=0))
    session = storage.get_session(None)
    session["a"] = 1
    header = storage.commit_session(session)
    assert header is not None and "Expires=Thu, 01 Jan 1970" in header


def test_a_cookie_too_large_for_its_attributes_still_raises() -> None:
    small = create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"], max_age=60))
    session = small.get_session(None)
    session["blob"] = "x" * 2900
    header = pair(small.commit_session(session))
    large = create_cookie_session_storage(
        cookie=create_cookie("s", secrets=["k"], max_age=60, domain="d" * 900)
    )
    with pytest.raises(CookieTooLargeError):
        resent(large, header)


def test_a_cookie_signed_with_a_retired_secret_is_signed_again() -> None:
    old = create_cookie_session_storage(cookie=create_cookie("s", secrets=["old"], max_age=60))
    session = old.get_session(None)
    session["a"] = 1
    header = pair(old.commit_session(session))
    rotated = create_cookie_session_storage(cookie=create_cookie("s", secrets=["new", "old"], max_age=60))
    assert pair(resent(rotated, header)) != header
    assert rotated.get_session(pair(resent(rotated, header)))["a"] == 1


def test_a_tampered_cookie_gives_a_fresh_session_and_never_raises() -> None:
    storage = signed()
    session = storage.get_session(None)
    session["a"] = 1
    header = pair(storage.commit_session(session))
    resent(storage, header)  # remembered now
    payload, _, signature = header.partition(".")
    flipped = "B" if signature[-1] == "A" else "A"
    for forged in (
        f"{payload}.{signature[:-1]}{flipped}",
        f"{payload[:-2]}x.{signature}",
        header + "x",
        "s=...",
    ):
        session = storage.get_session(forged)
        assert session.is_new and dict(session) == {}


def test_a_changed_or_destroyed_session_takes_the_whole_commit() -> None:
    storage = signed()
    session = storage.get_session(None)
    session["a"] = 1
    header = pair(storage.commit_session(session))
    changed = storage.get_session(header)
    changed["a"] = 2
    assert storage.get_session(pair(storage.commit_session(changed)))["a"] == 2
    destroyed = storage.get_session(header)
    destroyed.destroy()
    assert "Expires=Thu, 01 Jan 1970" in (storage.commit_session(destroyed) or "")
