"""Revoking cookie sessions: a per-user generation kept in a store, checked on read."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from websession import (
    ConfigurationError,
    create_cookie,
    create_cookie_session_storage,
    create_memcache_session_storage,
    create_memory_session_storage,
)
from websession.users import USER_KEY, UserIndexUnsupportedError

EXPIRED = "Expires=Thu, 01 Jan 1970"


class Doors:
    """Call a storage verb through the sync or the async door."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, storage: Any, verb: str, *args: Any, **kwargs: Any) -> Any:
        if self.name == "sync":
            return getattr(storage, verb)(*args, **kwargs)
        return asyncio.run(getattr(storage, f"a{verb}")(*args, **kwargs))


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Doors:
    return Doors(request.param)


@pytest.fixture
def generations() -> Any:
    return create_memory_session_storage(cookie=create_cookie("unused", secrets=["k"]))


@pytest.fixture(params=["signed", "encrypted"])
def storage(request: pytest.FixtureRequest, generations: Any) -> Any:
    cookie = create_cookie("s", secrets=["k"], max_age=3600)
    if request.param == "encrypted":
        return create_cookie_session_storage(
            cookie=cookie, encryption_keys=["k" * 32], revocation=generations
        )
    return create_cookie_session_storage(cookie=cookie, revocation=generations)


def sign_in(call: Doors, storage: Any, user: str = "ada") -> str:
    session = call(storage, "get_session", None)
    session["theme"] = "dark"
    session.login(user)
    return call(storage, "commit_session", session).split(";")[0]


def test_a_signed_in_cookie_carries_the_generation(call: Doors, storage: Any) -> None:
    header = sign_in(call, storage)
    session = call(storage, "get_session", header)
    assert session.user == "ada" and session[USER_KEY] == {"id": "ada", "gen": 0}
    assert session["theme"] == "dark"


def test_revoke_user_signs_every_cookie_out(call: Doors, storage: Any) -> None:
    laptop, phone, other = sign_in(call, storage), sign_in(call, storage), sign_in(call, storage, "grace")
    assert call(storage, "revoke_user", "ada") == 0
    for header in (laptop, phone):
        session = call(storage, "get_session", header)
        assert session.is_new and session.user is None
        set_cookie = call(storage, "commit_session", session)
        assert set_cookie is not None and EXPIRED in set_cookie  # the revoked cookie is cleared
    assert call(storage, "get_session", other).user == "grace"
    again = sign_in(call, storage)  # signing in afterwards works, at the new generation
    assert call(storage, "get_session", again)[USER_KEY] == {"id": "ada", "gen": 1}


def test_revoke_user_keeps_the_current_cookie(call: Doors, storage: Any) -> None:
    laptop, phone = sign_in(call, storage), sign_in(call, storage)
    current = call(storage, "get_session", phone)
    call(storage, "revoke_user", "ada", keep=current)
    reissued = call(storage, "commit_session", current)
    assert reissued is not None and EXPIRED not in reissued
    assert call(storage, "get_session", reissued.split(";")[0]).user == "ada"
    assert call(storage, "get_session", phone).is_new  # the cookie before the re-issue is old
    assert call(storage, "get_session", laptop).is_new


def test_only_signed_in_requests_read_the_generation(call: Doors, storage: Any, generations: Any) -> None:
    reads: list[str] = []
    store = generations.store
    sync_generation = store.generation

    def counted(user: str, *, bump: bool = False) -> int:
        reads.append(user)
        return sync_generation(user, bump=bump)

    async def acounted(user: str, *, bump: bool = False) -> int:
        reads.append(user)
        return sync_generation(user, bump=bump)

    store.generation, store.ageneration = counted, acounted
    anonymous = create_cookie_session_storage(cookie=storage.cookie, revocation=generations)
    session = call(anonymous, "get_session", None)
    session["a"] = 1
    header = call(anonymous, "commit_session", session).split(";")[0]
    call(anonymous, "get_session", header)
    assert reads == []  # no cookie, or an anonymous one: no store I/O
    signed_in = sign_in(call, storage)
    assert reads == ["ada"]  # the sign-in stamps the generation
    call(storage, "get_session", signed_in)
    assert reads == ["ada", "ada"]  # one read per signed-in request


def test_without_a_revocation_store_users_sign_in_but_cannot_be_revoked(call: Doors) -> None:
    storage = create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"]))
    header = sign_in(call, storage)
    assert call(storage, "get_session", header).user == "ada"
    with pytest.raises(UserIndexUnsupportedError, match="revocation="):
        call(storage, "revoke_user", "ada")


def test_cookie_sessions_cannot_be_listed_or_revoked_one_by_one(call: Doors, storage: Any) -> None:
    with pytest.raises(UserIndexUnsupportedError, match="cannot be listed"):
        call(storage, "sessions_of", "ada")
    with pytest.raises(UserIndexUnsupportedError, match="revoke_user"):
        call(storage, "revoke", "x")


def test_the_revocation_store_needs_a_user_index() -> None:
    unindexed = create_memcache_session_storage(servers=["127.0.0.1:1"])
    with pytest.raises(ConfigurationError, match="user index"):
        create_cookie_session_storage(cookie=create_cookie("s", secrets=["k"]), revocation=unindexed)


def test_a_forged_generation_does_not_verify(storage: Any) -> None:
    header = sign_in(Doors("sync"), storage)
    name, _, value = header.partition("=")
    forged = f"{name}={value[:-3]}AAA"
    assert storage.get_session(forged).user is None
