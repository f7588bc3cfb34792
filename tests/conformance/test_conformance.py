"""The conformance suite: every store, through the sync door and the async door.

Each test receives ``case`` (the store), ``door`` (sync or async) and ``storage``. A store
joins by adding a module under ``tests/conformance/cases/``.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.timing import Stopwatch
from websession import ConfigurationError, generate_id
from websession.cookie import find_cookie
from websession.stores.base import Store

from .cases import StoreCase
from .conftest import COOKIE_NAME, SECRETS
from .harness import Browser, Door, FakeClock

FIDELITY = {
    "empty_list": [],
    "empty_dict": {},
    "big_int": 2**63 - 1,
    "bigger_int": 2**64 + 1,
    "float": 0.1 + 0.2,
    "text": 'ü€😀 \u2028 "quoted" \\ back',
    "nested": {"a": [1, {"b": []}], "c": None, "d": True},
}


def store_of(storage: Any) -> Any:
    return getattr(storage, "store", storage)


def atomic(storage: Any) -> bool:
    return bool(store_of(storage).atomic_changes)


def wait_out(clock: Any, seconds: float) -> None:
    """Let ``seconds`` pass: move a fake clock, or really wait for a server's TTL."""
    if isinstance(clock, FakeClock):
        clock.advance(seconds)
    else:
        time.sleep(seconds)


class Counting:
    """Counts calls to a store's operations, both doors."""

    NAMES = ("create", "read", "update", "delete")

    def __init__(self, store: Any, door: Door) -> None:
        self.calls: list[str] = []
        for name in self.NAMES:
            self._wrap(store, f"a{name}" if door.name == "async" else name)

    def _wrap(self, store: Any, method: str) -> None:
        original = getattr(store, method)
        calls = self.calls
        if method.startswith("a"):

            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                calls.append(method[1:])
                return await original(*args, **kwargs)
        else:

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                calls.append(method)
                return original(*args, **kwargs)

        setattr(store, method, wrapper)


# -- round trips ---------------------------------------------------------------------------


def test_round_trip(door: Door, storage: Any, browser: Browser) -> None:
    first = door.get(storage, None)
    assert first.is_new
    first.update(user=42, name="Ada")
    browser.receive(door.commit(storage, first))
    assert browser.value is not None and not first.is_new
    again = door.get(storage, browser.header)
    assert not again.is_new
    assert dict(again) == {"user": 42, "name": "Ada"}
    assert again.get("user") == 42


def test_values_keep_their_type_and_value_across_updates(door: Door, storage: Any, browser: Browser) -> None:
    door.request(storage, browser, lambda s: s.update(FIDELITY))
    for n in range(4):
        door.request(storage, browser, lambda s, n=n: s.set("counter", n))
    session = door.get(storage, browser.header)
    for key, value in FIDELITY.items():
        assert session[key] == value and type(session[key]) is type(value), key
    assert session["counter"] == 3


def test_no_cookie_means_no_store_io(door: Door, storage: Any, case: StoreCase) -> None:
    counter = Counting(store_of(storage), door) if case.server_side else None
    session = door.get(storage, None)
    assert session.is_new and len(session) == 0
    assert door.commit(storage, session) is None
    session = door.get(storage, "other=1; another=2")
    assert door.commit(storage, session) is None
    if counter is not None:
        assert counter.calls == []


def test_unchanged_session_costs_one_read_and_no_write(
    door: Door, make_storage: Any, browser: Browser, case: StoreCase
) -> None:
    if not case.server_side:
        pytest.skip("cookie storage has no store I/O to count")
    storage = make_storage(rolling=False)
    door.request(storage, browser, lambda s: s.set("a", 1))
    counter = Counting(store_of(storage), door)
    session = door.get(storage, browser.header)
    assert session["a"] == 1
    assert door.commit(storage, session) is None
    assert counter.calls == ["read"]


def test_changed_session_is_one_read_and_one_update(
    door: Door, make_storage: Any, browser: Browser, case: StoreCase
) -> None:
    if not case.server_side:
        pytest.skip("cookie storage has no store I/O to count")
    storage = make_storage(rolling=False)
    door.request(storage, browser, lambda s: s.set("a", 1))
    counter = Counting(store_of(storage), door)
    session = door.get(storage, browser.header)
    session["b"] = 2
    assert door.commit(storage, session) is None  # not rolling: the cookie stays as it is
    assert counter.calls == ["read", "update"]
    assert dict(door.get(storage, browser.header)) == {"a": 1, "b": 2}


# -- Remix verbs across requests ------------------------------------------------------------


def test_flash_is_read_once_across_two_requests(door: Door, storage: Any, browser: Browser) -> None:
    door.request(storage, browser, lambda s: (s.set("user", 1), s.flash("notice", "Saved")))
    seen: list[Any] = []
    door.request(storage, browser, lambda s: (seen.append(s.has("notice")), seen.append(s.get("notice"))))
    door.request(storage, browser, lambda s: (seen.append(s.has("notice")), seen.append(s.get("notice"))))
    assert seen == [True, "Saved", False, None]
    assert dict(door.get(storage, browser.header)) == {"user": 1}


def test_unset_and_has(door: Door, storage: Any, browser: Browser) -> None:
    door.request(storage, browser, lambda s: s.update(a=1, b=2))
    door.request(storage, browser, lambda s: (s.unset("a"), s.unset("missing")))
    session = door.get(storage, browser.header)
    assert not session.has("a") and session.has("b")
    assert dict(session) == {"b": 2}


def test_del_removes_a_key(door: Door, storage: Any, browser: Browser) -> None:
    door.request(storage, browser, lambda s: s.update(a=1, b=2))

    def drop(session: Any) -> None:
        del session["a"]

    door.request(storage, browser, drop)
    assert dict(door.get(storage, browser.header)) == {"b": 2}


def test_in_place_edit_of_a_read_value_is_committed(door: Door, storage: Any, browser: Browser) -> None:
    door.request(storage, browser, lambda s: s.set("cart", ["apple"]))
    door.request(storage, browser, lambda s: s["cart"].append("pear"))
    assert door.get(storage, browser.header)["cart"] == ["apple", "pear"]


def test_destroy(door: Door, storage: Any, browser: Browser) -> None:
    door.request(storage, browser, lambda s: s.set("user", 1))
    old_header = browser.header
    session = door.get(storage, browser.header)
    header = door.destroy(storage, session)
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in header and "Max-Age" not in header
    browser.receive(header)
    assert browser.value is None
    if store_of(storage) is not storage:  # server-side: the old cookie is dead too
        replay = door.get(storage, old_header)
        assert replay.is_new and len(replay) == 0


def test_destroy_through_session_destroy(door: Door, storage: Any, browser: Browser) -> None:
    door.request(storage, browser, lambda s: s.set("user", 1))
    door.request(storage, browser, lambda s: s.destroy())
    assert browser.value is None


def test_regenerate_moves_data_to_a_new_id(
    door: Door, storage: Any, browser: Browser, case: StoreCase
) -> None:
    door.request(storage, browser, lambda s: s.set("cart", [1]))
    old_header = browser.header
    old_id = door.get(storage, old_header).id
    door.request(storage, browser, lambda s: (s.regenerate(), s.set("user", 7)))
    assert browser.header != old_header
    session = door.get(storage, browser.header)
    assert dict(session) == {"cart": [1], "user": 7}
    if case.server_side:
        assert session.id != old_id
        stale = door.get(storage, old_header)
        assert stale.is_new and len(stale) == 0


# -- expiry ----------------------------------------------------------------------------------


def test_expired_session_is_never_returned(
    door: Door, make_storage: Any, browser: Browser, clock: Any, case: StoreCase
) -> None:
    if not case.server_side:
        pytest.skip("cookie storage: the browser drops an expired cookie; nothing server-side")
    storage = make_storage(max_age=2, rolling=False)
    watch = Stopwatch()
    door.request(storage, browser, lambda s: s.set("user", 1))
    found = door.get(storage, browser.header)
    # Alive while its 2 s last; a machine so loaded that 2 s passed proves nothing either way.
    assert found.get("user") == 1 or watch.elapsed >= 2
    wait_out(clock, 3.2)
    session = door.get(storage, browser.header)
    assert session.is_new and len(session) == 0
    # The dead id is never written again.
    door.request(storage, browser, lambda s: s.set("user", 2))
    assert door.get(storage, browser.header).id != find_cookie(browser.header, COOKIE_NAME)


def test_rolling_keeps_an_active_session_alive(
    door: Door, make_storage: Any, browser: Browser, clock: Any, case: StoreCase
) -> None:
    if not case.server_side:
        pytest.skip("cookie storage has no server-side expiry")
    storage = make_storage(max_age=4)
    door.request(storage, browser, lambda s: s.set("user", 1))
    for _ in range(3):
        watch = Stopwatch()  # the record's 4 s start again at each commit
        wait_out(clock, 1.6)
        session = door.get(storage, browser.header)
        if watch.elapsed >= 4 and not isinstance(clock, FakeClock):
            pytest.skip("the machine stalled longer than the session's lifetime")
        assert session.get("user") == 1
        header = door.commit(storage, session)
        assert header is not None and "Max-Age=4" in header  # re-sent with a fresh Max-Age
        browser.receive(header)


UNKNOWN = object()


def stored_expiry(storage: Any, id: str) -> Any:
    """When the store says the record for ``id`` expires (peek: sync, untouched), or UNKNOWN."""
    store = store_of(storage)
    try:
        record = store.peek(id)
    except ConfigurationError:  # this storage was handed an async client only; peek is sync
        return UNKNOWN
    assert record is not None
    if record.expires is None and type(store).peek is Store.peek:
        return UNKNOWN  # callbacks in the Remix style read data only
    return record.expires


@pytest.mark.parametrize(("ttl", "max_age"), [(120, 3600), (7200, 60)])
def test_an_explicit_ttl_is_the_record_lifetime_whatever_the_cookie_says(
    door: Door, make_storage: Any, browser: Browser, clock: Any, case: StoreCase, ttl: int, max_age: int
) -> None:
    if not case.server_side:
        pytest.skip("cookie storage keeps no record whose lifetime a ttl could set")
    storage = make_storage(max_age=max_age, ttl=ttl)
    checked = []

    def request_and_check() -> None:
        watch = Stopwatch()
        session = door.request(storage, browser, lambda s: s.set("n", s.get("n", 0) + 1))
        assert f"Max-Age={max_age}" in (browser.history[-1] or "")  # the cookie keeps its own
        assert session.id is not None
        expires = stored_expiry(storage, session.id)
        if expires is not UNKNOWN:
            assert watch.close(expires, clock() + timedelta(seconds=ttl)), (expires, clock())
            checked.append("stored expiry")

    request_and_check()  # created
    if isinstance(clock, FakeClock):
        clock.advance(90)  # past the touch interval (60 s), so that the rolling write shows
    request_and_check()  # updated, and touched on the way in
    if isinstance(clock, FakeClock):
        clock.advance(min(ttl, max_age) + 1)  # past the shorter of the two lifetimes
        assert door.get(storage, browser.header).is_new is (ttl < max_age)
        checked.append("expiry on the store's clock")
    if not checked:
        pytest.skip(f"declared: {case.name} here has neither a sync peek nor a store clock to move")


def test_not_rolling_unchanged_sends_no_cookie(door: Door, make_storage: Any, browser: Browser) -> None:
    storage = make_storage(rolling=False)
    door.request(storage, browser, lambda s: s.set("user", 1))
    assert door.commit(storage, door.get(storage, browser.header)) is None


def test_commit_with_an_expired_lifetime_deletes(door: Door, storage: Any, browser: Browser) -> None:
    door.request(storage, browser, lambda s: s.set("user", 1))
    session = door.get(storage, browser.header)
    header = door.commit(storage, session, max_age=0)
    assert header is not None and "Expires=Thu, 01 Jan 1970" in header
    browser.receive(header)
    assert browser.value is None


# -- hostile and stale cookies ------------------------------------------------------------


def hostile_headers(valid: str) -> list[str | bytes]:
    name, _, value = valid.partition("=")
    payload, _, signature = value.rpartition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    return [
        f"{name}={payload}.{flipped}",  # one character of the signature changed
        f"{name}={payload[:-3]}.{signature}",  # truncated payload
        f"{name}={value[:-5]}",  # truncated signature
        f"{name}={payload}",  # signature removed
        f"{name}={payload}.",
        f"{name}=.{signature}",
        f"{name}=%ZZ%00garbage",
        f"{name}=" + "A" * 10_000,
        f"{name}={payload}.{'€' * 43}",
        (f"{name}=\xff\xfe\x00;".encode("latin-1") + b"\x80\x81"),
        f"{name}={base64.b64encode(b'not json').decode()}.{signature}",
        f'{name}="{value}',
        f"{name}=;{name}={value}",  # an empty first value wins and means no session
    ]


def test_tampered_garbage_and_oversized_cookies_give_a_fresh_session(
    door: Door, storage: Any, browser: Browser
) -> None:
    door.request(storage, browser, lambda s: s.set("user", 1))
    assert browser.header is not None
    for header in hostile_headers(browser.header):
        session = door.get(storage, header)
        assert session.is_new and len(session) == 0, header
        door.commit(storage, session)  # committing a fresh session never raises either


def test_cookie_signed_with_an_unknown_secret_gives_a_fresh_session(
    door: Door, make_storage: Any, browser: Browser
) -> None:
    door.request(storage := make_storage(secrets=["a"]), browser, lambda s: s.set("user", 1))
    other = make_storage(secrets=["b"])
    assert door.get(other, browser.header).is_new
    assert door.get(storage, browser.header)["user"] == 1


def test_unknown_id_is_replaced(door: Door, storage: Any, case: StoreCase) -> None:
    if not case.server_side:
        pytest.skip("cookie storage has no ids")
    planted = generate_id()
    header = storage.cookie.serialize(planted).split(";")[0]
    session = door.get(storage, header)
    assert session.is_new and session.id is None
    session["user"] = 1
    set_cookie = door.commit(storage, session)
    assert set_cookie is not None
    assert session.id is not None and session.id != planted
    assert door.get(storage, header).is_new  # the planted id still leads nowhere


def test_malformed_id_never_reaches_the_store(door: Door, storage: Any, case: StoreCase) -> None:
    if not case.server_side:
        pytest.skip("cookie storage has no ids")
    counter = Counting(store_of(storage), door)
    for bad in ["../../etc/passwd", "a" * 10_000, "0123\x00abcd" * 4, "a/b", 42, None, ["x"]]:
        header = storage.cookie.serialize(bad).split(";")[0]
        assert door.get(storage, header).is_new
    assert counter.calls == []


def test_stale_cookie_is_cleared_when_nothing_is_saved(door: Door, storage: Any, case: StoreCase) -> None:
    header = f"{COOKIE_NAME}=garbage"
    set_cookie = door.commit(storage, door.get(storage, header))
    assert set_cookie is not None and set_cookie.startswith(f"{COOKIE_NAME}=;")


# -- secrets ----------------------------------------------------------------------------------


def test_rotated_secret_keeps_users_signed_in_and_resigns(
    door: Door, make_storage: Any, browser: Browser
) -> None:
    old = make_storage(secrets=["old-secret"], rolling=False)
    door.request(old, browser, lambda s: s.set("user", 1))
    rotated = make_storage(secrets=SECRETS, rolling=False)
    if getattr(rotated, "store", None) is not None and getattr(old, "store", None) is not None:
        rotated.store = old.store  # the same records, a new cookie configuration
    session = door.get(rotated, browser.header)
    assert session["user"] == 1 and session.resign
    header = door.commit(rotated, session)
    assert header is not None  # re-signed with the new secret
    browser.receive(header)
    # The new cookie verifies with the new secret alone (asked of a storage, so that sealed
    # cookies, which are not in the signed format, are checked the same way).
    assert make_storage(secrets=["new-secret"]).cookie.parse(browser.header) is not None


# -- save_uninitialized -----------------------------------------------------------------------


def test_save_uninitialized_off_stores_nothing(door: Door, make_storage: Any) -> None:
    storage = make_storage(save_uninitialized=False)
    assert door.commit(storage, door.get(storage, None)) is None


def test_save_uninitialized_on_stores_an_empty_session(
    door: Door, make_storage: Any, browser: Browser
) -> None:
    storage = make_storage(save_uninitialized=True)
    session = door.get(storage, None)
    browser.receive(door.commit(storage, session))
    assert browser.value is not None
    again = door.get(storage, browser.header)
    assert not again.is_new and len(again) == 0


# -- concurrency ------------------------------------------------------------------------------


def require_atomic(storage: Any, case: StoreCase) -> None:
    if not atomic(storage):
        pytest.skip(
            f"declared: the {case.name} store does not apply changes atomically (atomic_changes=False)"
        )


def test_concurrent_changes_to_different_keys_both_survive(
    door: Door, storage: Any, browser: Browser, case: StoreCase
) -> None:
    require_atomic(storage, case)
    door.request(storage, browser, lambda s: s.set("base", 0))
    door.concurrently(storage, browser.header, [lambda s: s.set("x", 1), lambda s: s.set("y", 2)])
    assert dict(door.get(storage, browser.header)) == {"base": 0, "x": 1, "y": 2}


def test_many_parallel_requests_each_keep_their_key(
    door: Door, storage: Any, browser: Browser, case: StoreCase
) -> None:
    require_atomic(storage, case)
    door.request(storage, browser, lambda s: s.set("base", 0))
    mutations = [lambda s, i=i: s.set(f"k{i}", i) for i in range(20)]
    door.concurrently(storage, browser.header, mutations)
    data = dict(door.get(storage, browser.header))
    assert data == {"base": 0, **{f"k{i}": i for i in range(20)}}


def test_concurrent_removal_and_set_both_apply(
    door: Door, storage: Any, browser: Browser, case: StoreCase
) -> None:
    require_atomic(storage, case)
    door.request(storage, browser, lambda s: (s.set("a", 1), s.flash("notice", "hi")))
    door.concurrently(storage, browser.header, [lambda s: s.get("notice"), lambda s: s.set("b", 2)])
    assert dict(door.get(storage, browser.header)) == {"a": 1, "b": 2}


def test_destroy_wins_over_a_later_update(
    door: Door, storage: Any, browser: Browser, case: StoreCase
) -> None:
    require_atomic(storage, case)
    door.request(storage, browser, lambda s: s.set("user", 1))
    header = browser.header
    first = door.get(storage, header)
    second = door.get(storage, header)
    door.destroy(storage, first)
    second["cart"] = [1]
    set_cookie = door.commit(storage, second)
    assert set_cookie is not None and "Expires=Thu, 01 Jan 1970" in set_cookie
    assert second.destroyed
    replay = door.get(storage, header)
    assert replay.is_new and len(replay) == 0


# -- regenerate is "move if it still exists" -------------------------------------------------------


def live_count(storage: Any) -> int | None:
    """How many records the store holds, where it can tell (maintenance is sync only)."""
    try:
        return int(store_of(storage).count())
    except (NotImplementedError, AttributeError, ConfigurationError):
        return None


def test_regenerate_after_a_destroy_brings_nothing_back(
    door: Door, storage: Any, browser: Browser, case: StoreCase
) -> None:
    if not hasattr(storage, "store"):
        pytest.skip(
            f"declared: {case.name} storage keeps no record on the server that a destroy could delete"
        )
    door.request(storage, browser, lambda s: s.set("user", 1))
    header = browser.header
    signing_in = door.get(storage, header)
    signing_out = door.get(storage, header)  # another tab, or `websession rm`
    door.destroy(storage, signing_out)
    signing_in.regenerate()
    signing_in["user"] = 2
    set_cookie = door.commit(storage, signing_in)
    assert set_cookie is not None and "Expires=Thu, 01 Jan 1970" in set_cookie
    assert signing_in.destroyed
    assert live_count(storage) in (0, None)
    assert door.get(storage, header).is_new


def test_regenerate_moves_the_record_and_keeps_a_concurrent_update(
    door: Door, storage: Any, browser: Browser, case: StoreCase
) -> None:
    require_atomic(storage, case)
    door.request(storage, browser, lambda s: s.set("base", 0))
    old = browser.header
    signing_in = door.get(storage, old)
    other = door.get(storage, old)
    other["cart"] = [1]
    door.commit(storage, other)  # lands between the sign-in's read and its commit
    signing_in.regenerate()
    signing_in["user"] = 7
    browser.receive(door.commit(storage, signing_in))
    assert browser.header != old
    assert dict(door.get(storage, browser.header)) == {"base": 0, "cart": [1], "user": 7}
    assert door.get(storage, old).is_new  # the old id is gone
    assert live_count(storage) in (1, None)


# The regenerate's commit and the destroy's are each a short sequence of store writes (take and
# create; delete). What must hold depends only on which of them reaches the old record first, so
# the tests below put the destroy at a chosen point of the regenerate's writes, in both doors.

WRITES = ("take", "create", "delete", "update")
EXPIRED = "Expires=Thu, 01 Jan 1970"


def wrap_writes(store: Any, door: Door, around: Any) -> Callable[[], None]:
    """Route the store's writes through the door under test via ``around(name, call)``, where
    ``call()`` performs the write (it returns an awaitable through the async door). Returns
    what puts the store back."""
    originals: dict[str, Any] = {}
    for name in WRITES:
        method = f"a{name}" if door.name == "async" else name
        original = getattr(store, method, None)
        if original is None:  # a store from before take() existed still names its writes
            continue
        originals[method] = original
        if door.name == "async":

            async def write(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
                return await around(_name, lambda: _original(*args, **kwargs))
        else:

            def write(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
                return around(_name, lambda: _original(*args, **kwargs))

        setattr(store, method, write)

    def restore() -> None:
        for method, original in originals.items():
            setattr(store, method, original)

    return restore


class DestroyInside:
    """Runs another request's destroy inside a regenerate's commit, through the same door:
    ``at="before"`` just before the commit's first store write, ``at="between"`` right after
    it, before any other. Notes whether the record was still there when the destroy ran."""

    def __init__(self, storage: Any, door: Door, other: Any, at: str) -> None:
        self.storage, self.other, self.at = storage, other, at
        self.writes = 0
        self.found_by_destroy: bool | None = None
        self.store = store_of(storage)
        wrap_writes(self.store, door, self._async if door.name == "async" else self._sync)

    def _sync(self, name: str, call: Any) -> Any:
        self.writes += 1
        if self.writes > 1:  # the destroy's own delete, the regenerate's later writes
            return call()
        if self.at == "before":
            self._destroy()
        result = call()
        if self.at == "between":
            self._destroy()
        return result

    def _destroy(self) -> None:
        self.found_by_destroy = self.store.read(self.other.id, None) is not None
        self.storage.destroy_session(self.other)

    async def _async(self, name: str, call: Any) -> Any:
        self.writes += 1
        if self.writes > 1:
            return await call()
        if self.at == "before":
            await self._adestroy()
        result = await call()
        if self.at == "between":
            await self._adestroy()
        return result

    async def _adestroy(self) -> None:
        self.found_by_destroy = await self.store.aread(self.other.id, None) is not None
        await self.storage.adestroy_session(self.other)


def require_server_side(storage: Any, case: StoreCase) -> None:
    if not hasattr(storage, "store"):
        pytest.skip(
            f"declared: {case.name} storage keeps no record on the server that a destroy could delete"
        )


def test_regenerate_after_the_destroy_reached_the_record_expires_the_cookie(
    door: Door, storage: Any, browser: Browser, case: StoreCase
) -> None:
    require_server_side(storage, case)
    door.request(storage, browser, lambda s: s.set("user", 1))
    old = browser.header
    signing_in, signing_out = door.get(storage, old), door.get(storage, old)
    race = DestroyInside(storage, door, signing_out, at="before")
    signing_in.regenerate()
    signing_in["user"] = 2
    set_cookie = door.commit(storage, signing_in)
    assert race.found_by_destroy is True  # the destroy came first and deleted the record
    assert set_cookie is not None and EXPIRED in set_cookie, set_cookie
    assert signing_in.destroyed
    assert live_count(storage) in (0, None)
    assert door.get(storage, old).is_new


def test_regenerate_that_reached_the_record_first_leaves_the_destroy_nothing(
    door: Door, storage: Any, browser: Browser, case: StoreCase
) -> None:
    require_server_side(storage, case)
    door.request(storage, browser, lambda s: s.set("user", 1))
    old = browser.header
    signing_in, signing_out = door.get(storage, old), door.get(storage, old)
    race = DestroyInside(storage, door, signing_out, at="between")
    signing_in.regenerate()
    signing_in["user"] = 2
    browser.receive(door.commit(storage, signing_in))
    assert race.found_by_destroy is False  # the regenerate had already taken the record
    assert browser.header is not None and browser.header != old
    assert dict(door.get(storage, browser.header)) == {"user": 2}
    assert door.get(storage, old).is_new
    assert live_count(storage) in (1, None)


class WriteLog:
    """Logs each store write with the request that made it and when it began and ended."""

    def __init__(self, storage: Any, door: Door) -> None:
        self.events: list[tuple[object, str, str]] = []  # (request, write, "begin" | "end")
        self.names: dict[object, str] = {}
        around = self._async if door.name == "async" else self._sync
        self.restore = wrap_writes(store_of(storage), door, around)

    def mark(self, name: str) -> None:
        """Called by a request's mutation: it runs in the request's own thread or task."""
        self.names[current_request()] = name

    def _sync(self, name: str, call: Any) -> Any:
        self._log(name, "begin")
        try:
            return call()
        finally:
            self._log(name, "end")

    async def _async(self, name: str, call: Any) -> Any:
        self._log(name, "begin")
        try:
            return await call()
        finally:
            self._log(name, "end")

    def _log(self, name: str, phase: str) -> None:
        self.events.append((current_request(), name, phase))

    def span(self, request: str) -> tuple[int, int]:
        """Where the first write of ``request`` began and ended in the log."""
        begin = next(
            i
            for i, (who, _, phase) in enumerate(self.events)
            if self.names.get(who) == request and phase == "begin"
        )
        name = self.events[begin][1]
        end = next(
            i
            for i, (who, what, phase) in enumerate(self.events)
            if i > begin and self.names.get(who) == request and what == name and phase == "end"
        )
        return begin, end


def current_request() -> object:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no loop: a thread of the sync door
        return threading.get_ident()


def test_regenerate_racing_a_destroy_never_leaves_two_sessions(
    door: Door, storage: Any, browser: Browser, case: StoreCase
) -> None:
    """Really concurrent: each outcome is checked against the order the writes actually took."""
    require_server_side(storage, case)
    for _ in range(8):
        fresh = Browser(browser.name)
        door.request(storage, fresh, lambda s: s.set("user", 1))
        old = fresh.header
        log = WriteLog(storage, door)
        regenerated, destroyed = door.concurrently(
            storage,
            old,
            [
                lambda s: (log.mark("regenerate"), s.regenerate(), s.set("user", 2)),
                lambda s: (log.mark("destroy"), s.destroy()),
            ],
        )
        assert regenerated is not None and destroyed is not None and EXPIRED in destroyed
        assert door.get(storage, old).is_new  # the destroyed id never comes back
        regenerate, destroy = log.span("regenerate"), log.span("destroy")
        if destroy[1] < regenerate[0]:
            assert EXPIRED in regenerated, "the destroy reached the record first: nothing may move"
        elif regenerate[1] < destroy[0]:
            assert EXPIRED not in regenerated, "the regenerate took the record first: it moves"
        if EXPIRED in regenerated:
            assert live_count(storage) in (0, None)
        else:
            moved = Browser(browser.name)
            moved.receive(regenerated)
            assert dict(door.get(storage, moved.header)) == {"user": 2}
            assert live_count(storage) in (1, None)
            door.destroy(storage, door.get(storage, moved.header))
        log.restore()
