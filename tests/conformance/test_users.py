"""Users and their devices, on every store, through both doors (websession.users).

Stores that keep a per-user index (``user_index = True``) must bind, list and revoke
atomically; the others must refuse a sign-in with UserIndexUnsupportedError before any I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest

from websession.users import USER_KEY, UserIndexUnsupportedError

from .cases import StoreCase
from .harness import Browser, Door, FakeClock
from .test_conformance import live_count, store_of

EXPIRED = "Expires=Thu, 01 Jan 1970"


@pytest.fixture
def indexed(storage: Any, case: StoreCase) -> Any:
    """The storage, when its store keeps a user index; the test is skipped (declared) otherwise."""
    if not case.server_side:
        pytest.skip(
            f"declared: {case.name} storage keeps no records to index (see tests/test_users_cookie.py)"
        )
    if not store_of(storage).user_index:
        pytest.skip(f"declared: the {case.name} store cannot keep a user index (user_index=False)")
    return storage


def sign_in(door: Door, storage: Any, user: str = "ada", **labels: str) -> Browser:
    browser = Browser("__session")
    door.request(storage, browser, lambda s: s.set("theme", "dark"))
    door.request(storage, browser, lambda s: s.login(user, labels=labels or None))
    return browser


def keys(door: Door, storage: Any, user: str = "ada") -> list[str]:
    return [device.key for device in door.call(storage, "sessions_of", user)]


def key_of(storage: Any, browser: Browser) -> str:
    cookie = storage.cookie.read(browser.header)
    return store_of(storage).storage_key(cookie.value)


# -- binding -------------------------------------------------------------------------------


def test_login_moves_to_a_new_id_and_indexes_it(door: Door, indexed: Any) -> None:
    browser = Browser("__session")
    door.request(indexed, browser, lambda s: s.set("theme", "dark"))
    anonymous = browser.header
    session = door.request(indexed, browser, lambda s: s.login("ada", labels={"device": "laptop"}))
    assert browser.header != anonymous  # fixation defence
    assert door.get(indexed, anonymous).is_new
    assert session.user == "ada"
    again = door.get(indexed, browser.header)
    assert again.user == "ada" and again["theme"] == "dark"
    [device] = door.call(indexed, "sessions_of", "ada")
    assert device.key == key_of(indexed, browser)
    assert dict(device.labels) == {"device": "laptop"}
    assert device.created <= device.last_seen
    assert device.expires is not None and device.expires > device.last_seen


def test_a_new_session_can_log_in_directly(door: Door, indexed: Any) -> None:
    browser = Browser("__session")
    door.request(indexed, browser, lambda s: s.login(7))
    assert door.get(indexed, browser.header).user == "7"
    assert keys(door, indexed, "7") == [key_of(indexed, browser)]


def test_two_devices_are_listed_oldest_first(door: Door, indexed: Any, clock: Any) -> None:
    laptop = sign_in(door, indexed, device="laptop")
    if isinstance(clock, FakeClock):
        clock.advance(5)
    phone = sign_in(door, indexed, device="phone")
    devices = door.call(indexed, "sessions_of", "ada")
    assert [d.key for d in devices] == [key_of(indexed, laptop), key_of(indexed, phone)]
    assert [d.labels["device"] for d in devices] == ["laptop", "phone"]
    assert keys(door, indexed, "grace") == []


def test_logout_unindexes_and_keeps_the_other_data(door: Door, indexed: Any) -> None:
    browser = sign_in(door, indexed)
    signed_in = browser.header
    session = door.request(indexed, browser, lambda s: s.logout())
    assert session.user is None and browser.header != signed_in
    assert door.get(indexed, signed_in).is_new
    assert dict(door.get(indexed, browser.header)) == {"theme": "dark"}
    assert keys(door, indexed) == []


def test_destroying_a_signed_in_session_unindexes_it(door: Door, indexed: Any) -> None:
    browser = sign_in(door, indexed)
    browser.receive(door.destroy(indexed, door.get(indexed, browser.header)))
    assert keys(door, indexed) == []
    assert live_count(indexed) in (0, None)


def test_regenerate_keeps_the_device_entry(door: Door, indexed: Any) -> None:
    browser = sign_in(door, indexed, device="laptop")
    [before] = door.call(indexed, "sessions_of", "ada")
    door.request(indexed, browser, lambda s: s.regenerate())
    [after] = door.call(indexed, "sessions_of", "ada")
    assert after.key == key_of(indexed, browser) != before.key
    assert after.created == before.created and dict(after.labels) == {"device": "laptop"}


def test_logging_in_as_someone_else_moves_the_session_between_indexes(door: Door, indexed: Any) -> None:
    browser = sign_in(door, indexed, "ada")
    door.request(indexed, browser, lambda s: s.login("grace"))
    assert keys(door, indexed, "ada") == []
    assert keys(door, indexed, "grace") == [key_of(indexed, browser)]


def test_an_unchanged_signed_in_request_reads_once_and_writes_nothing(door: Door, indexed: Any) -> None:
    from .test_conformance import Counting

    browser = sign_in(door, indexed)
    counting = Counting(store_of(indexed), door)
    door.request(indexed, browser)
    assert counting.calls == ["read"]


@pytest.mark.parametrize(
    ("user", "labels", "error"),
    [
        (None, None, TypeError),
        ("", None, ValueError),
        (True, None, TypeError),
        ("ada", {"device": 3}, TypeError),
        ("ada", {"device": "x" * 1000}, ValueError),
        ("ada", {f"k{i}": "v" for i in range(17)}, ValueError),
    ],
)
def test_bad_users_and_labels_are_refused_at_login(user: Any, labels: Any, error: type) -> None:
    from websession import Session

    session = Session({"a": 1})
    with pytest.raises(error):
        session.login(user, labels=labels)
    assert session.user is None and not session.regenerating


# -- revocation ----------------------------------------------------------------------------


def test_revoke_one_device(door: Door, indexed: Any) -> None:
    laptop, phone = sign_in(door, indexed), sign_in(door, indexed)
    [first, _] = door.call(indexed, "sessions_of", "ada")
    assert door.call(indexed, "revoke", first, user="ada") is True
    assert door.get(indexed, laptop.header).is_new
    assert door.get(indexed, phone.header).user == "ada"
    assert keys(door, indexed) == [key_of(indexed, phone)]
    assert door.call(indexed, "revoke", first, user="ada") is False


def test_revoke_a_listed_device_without_naming_its_user(door: Door, indexed: Any) -> None:
    laptop = sign_in(door, indexed)
    [device] = door.call(indexed, "sessions_of", "ada")
    if store_of(indexed).hashes_ids:
        with pytest.raises(ValueError, match="user="):
            door.call(indexed, "revoke", device)
        return
    assert door.call(indexed, "revoke", device) is True
    assert door.get(indexed, laptop.header).is_new and keys(door, indexed) == []


def test_revoke_by_session_id_finds_the_user(door: Door, indexed: Any) -> None:
    laptop = sign_in(door, indexed)
    session_id = door.get(indexed, laptop.header).id
    assert door.call(indexed, "revoke", session_id) is True
    assert door.get(indexed, laptop.header).is_new and keys(door, indexed) == []
    assert door.call(indexed, "revoke", "not an id") is False


def test_revoke_an_anonymous_session_by_id(door: Door, indexed: Any) -> None:
    browser = Browser("__session")
    door.request(indexed, browser, lambda s: s.set("a", 1))
    assert door.call(indexed, "revoke", door.get(indexed, browser.header).id) is True
    assert door.get(indexed, browser.header).is_new


def test_revoke_user_signs_out_everywhere(door: Door, indexed: Any) -> None:
    browsers = [sign_in(door, indexed) for _ in range(3)]
    other = sign_in(door, indexed, "grace")
    assert door.call(indexed, "revoke_user", "ada") == 3
    assert all(door.get(indexed, b.header).is_new for b in browsers)
    assert keys(door, indexed) == []
    assert door.get(indexed, other.header).user == "grace"
    assert door.call(indexed, "revoke_user", "ada") == 0


def test_revoke_user_keeps_the_current_session(door: Door, indexed: Any) -> None:
    browsers = [sign_in(door, indexed) for _ in range(3)]
    current = door.get(indexed, browsers[1].header)
    assert door.call(indexed, "revoke_user", "ada", keep=current) == 2
    assert [door.get(indexed, b.header).is_new for b in browsers] == [True, False, True]
    assert keys(door, indexed) == [key_of(indexed, browsers[1])]


def test_an_update_racing_a_revocation_never_recreates_the_session(door: Door, indexed: Any) -> None:
    browser = sign_in(door, indexed)
    session = door.get(indexed, browser.header)
    door.call(indexed, "revoke_user", "ada")
    session["cart"] = [1]
    set_cookie = door.commit(indexed, session)
    assert set_cookie is not None and EXPIRED in set_cookie
    assert door.get(indexed, browser.header).is_new and live_count(indexed) in (0, None)


def regenerate_with_a_revocation_after_the_take(
    door: Door, storage: Any, browser: Browser, verb: str, *args: Any
) -> str | None:
    """Commit a regenerate of the browser's session while ``verb(*args)`` (a revocation,
    through the same door, as another process would) lands between the take of the old record
    and the create of the new one; return the commit's Set-Cookie."""
    store = store_of(storage)
    name = "atake_for_user" if door.name == "async" else "take_for_user"
    original = getattr(store, name)
    if door.name == "async":

        async def take(id: str, user: str) -> Any:
            taken = await original(id, user)
            # Through the async door: a store given an async-only client has no sync one.
            await getattr(store, f"a{verb}")(*args)
            return taken
    else:

        def take(id: str, user: str) -> Any:
            taken = original(id, user)
            worker = threading.Thread(target=getattr(store, verb), args=args)
            worker.start()
            worker.join(30)
            return taken

    setattr(store, name, take)
    try:
        session = door.get(storage, browser.header)
        session.regenerate()
        return door.commit(storage, session)
    finally:
        setattr(store, name, original)


def test_a_regenerate_racing_a_revocation_is_not_carried_over(door: Door, indexed: Any) -> None:
    """The revocation lands between the regenerate's take and its create: the user's
    generation changed, so the session must not live on under the new id."""
    browser = sign_in(door, indexed)
    set_cookie = regenerate_with_a_revocation_after_the_take(
        door, indexed, browser, "revoke_user", "ada", None
    )
    assert set_cookie is not None and EXPIRED in set_cookie
    assert keys(door, indexed) == [] and live_count(indexed) in (0, None)


def test_a_revoked_single_session_is_not_carried_over_by_a_racing_regenerate(
    door: Door, indexed: Any
) -> None:
    browser = sign_in(door, indexed)
    key = key_of(indexed, browser)
    set_cookie = regenerate_with_a_revocation_after_the_take(door, indexed, browser, "revoke", key, "ada")
    assert set_cookie is not None and EXPIRED in set_cookie
    assert keys(door, indexed) == []


def test_fifty_parallel_requests_racing_revoke_user(door: Door, indexed: Any) -> None:
    """50 requests of one user's sessions (reads, updates, regenerates) race one
    `revoke_user`: afterwards no session of that user is alive, whatever the interleaving."""
    browsers = [sign_in(door, indexed) for _ in range(5)]
    headers = [b.header for b in browsers]
    kinds = ["read", "update", "regenerate"]

    def mutation(kind: str, n: int) -> Any:
        if kind == "update":
            return lambda s: s.set(f"k{n}", n)
        if kind == "regenerate":
            return lambda s: s.regenerate()
        return lambda s: None

    jobs = [(headers[n % 5], mutation(kinds[n % 3], n)) for n in range(50)]
    received: list[str | None] = []
    if door.name == "sync":
        barrier = threading.Barrier(51)
        lock = threading.Lock()
        errors: list[BaseException] = []

        def request(header: str | None, mutate: Any) -> None:
            try:
                session = indexed.get_session(header)
                barrier.wait(30)
                mutate(session)
                result = indexed.commit_session(session)
                with lock:
                    received.append(result)
            except BaseException as exc:
                errors.append(exc)

        def revoke() -> None:
            barrier.wait(30)
            indexed.revoke_user("ada")

        threads = [threading.Thread(target=request, args=job) for job in jobs]
        threads.append(threading.Thread(target=revoke))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors[0]
    else:

        async def main() -> None:
            loaded = asyncio.Event()
            count = 0

            async def request(header: str | None, mutate: Any) -> None:
                nonlocal count
                session = await indexed.aget_session(header)
                count += 1
                if count == len(jobs):
                    loaded.set()
                await loaded.wait()
                mutate(session)
                received.append(await indexed.acommit_session(session))

            async def revoke() -> None:
                await loaded.wait()
                await indexed.arevoke_user("ada")

            await asyncio.gather(*(request(*job) for job in jobs), revoke())

        door.run(main())  # type: ignore[attr-defined]
    for header in headers:
        assert door.get(indexed, header).user is None
    for set_cookie in received:
        if set_cookie is not None and EXPIRED not in set_cookie:
            moved = Browser("__session")
            moved.receive(set_cookie)
            assert door.get(indexed, moved.header).user is None, "a revoked session lived on"
    assert keys(door, indexed) == []


# -- expiry and last seen ------------------------------------------------------------------


def test_expired_sessions_leave_the_index(door: Door, make_storage: Any, case: StoreCase, clock: Any) -> None:
    storage = make_storage(max_age=2)
    if not case.server_side or not store_of(storage).user_index:
        pytest.skip(f"declared: the {case.name} store cannot keep a user index")
    sign_in(door, storage)
    assert len(keys(door, storage)) == 1
    from .test_conformance import wait_out

    wait_out(clock, 3.5)
    assert keys(door, storage) == []
    with contextlib.suppress(NotImplementedError):
        store_of(storage).purge_expired()
    assert keys(door, storage) == []


def test_last_seen_follows_use_to_the_minute(door: Door, indexed: Any, clock: Any, case: StoreCase) -> None:
    if not isinstance(clock, FakeClock):
        pytest.skip(f"the {case.name} store expires records on the server's clock: no fake clock")
    browser = sign_in(door, indexed)
    [signed_in] = door.call(indexed, "sessions_of", "ada")
    clock.advance(1800)
    door.request(indexed, browser)  # an unchanged, rolling request
    [used] = door.call(indexed, "sessions_of", "ada")
    assert used.created == signed_in.created
    assert abs((used.last_seen - clock.now).total_seconds()) <= 60
    assert (used.last_seen - signed_in.last_seen).total_seconds() >= 1800 - 60


# -- stores without an index ---------------------------------------------------------------


def test_stores_without_an_index_refuse_a_login_before_any_io(
    door: Door, storage: Any, case: StoreCase
) -> None:
    if not case.server_side or store_of(storage).user_index:
        pytest.skip(f"the {case.name} store keeps a user index (or is cookie storage)")
    browser = Browser("__session")
    door.request(storage, browser, lambda s: s.set("a", 1))
    session = door.get(storage, browser.header)
    session.login("ada")
    with pytest.raises(UserIndexUnsupportedError, match=store_of(storage).kind):
        door.commit(storage, session)
    assert door.get(storage, browser.header)["a"] == 1  # nothing half-done
    with pytest.raises(UserIndexUnsupportedError):
        door.call(storage, "sessions_of", "ada")
    with pytest.raises(UserIndexUnsupportedError):
        door.call(storage, "revoke_user", "ada")


def test_the_binding_is_a_reserved_key_of_the_record(door: Door, indexed: Any) -> None:
    browser = sign_in(door, indexed)
    assert door.get(indexed, browser.header).data[USER_KEY] == {"id": "ada"}
