"""The tamper matrix: every way of damaging a good cookie gives a fresh, empty session.

For signed cookies: each bit of the payload and of the signature flipped, every truncation, a
signature swapped in from another session, a cookie signed by a retired secret, a cookie signed
with an empty secret or carrying an empty signature, a cookie bound to another client. For
sealed cookies: each bit of the token flipped (version, salt, nonce, ciphertext, tag), every
truncation, a token sealed for another cookie name, by a retired key, or for another client.

Each test first checks the untouched cookie works (so a broken fixture cannot pass), then
that the victim's session survives the attempts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest

from websession import (
    ConfigurationError,
    SessionStorage,
    create_cookie,
    create_cookie_session_storage,
    open_store,
)
from websession.cookie import find_cookie
from websession.encryption import create_encrypted_cookie
from websession.stores.memory import MemoryStore

from .backends import BACKENDS, Backend
from .conftest import COOKIE_NAME, SECRET, make_cookie, request_header


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def signature_with(secret: bytes, payload: str) -> str:
    return b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest()).rstrip("=")


def signed_tampers(value: str, other: str) -> Iterator[tuple[str, str]]:
    """(label, tampered value) for a signed cookie value ``payload.signature``."""
    payload, _, signature = value.rpartition(".")
    decoded = unb64(payload)
    for index in range(len(decoded)):
        for bit in range(8):
            flipped = bytearray(decoded)
            flipped[index] ^= 1 << bit
            yield f"payload bit {index}.{bit}", f"{b64(bytes(flipped))}.{signature}"
    mac = unb64(signature)
    for index in range(len(mac)):
        for bit in range(8):
            flipped = bytearray(mac)
            flipped[index] ^= 1 << bit
            yield f"signature bit {index}.{bit}", f"{payload}.{b64(bytes(flipped)).rstrip('=')}"
    for length in range(1, len(value)):
        yield f"truncated to {length}", value[:length]
    yield "swapped signature", f"{payload}.{other.rpartition('.')[2]}"
    yield "swapped payload", f"{other.rpartition('.')[0]}.{signature}"
    yield "empty secret", f"{payload}.{signature_with(b'', payload)}"
    yield "empty signature", f"{payload}."
    yield "no signature", payload
    yield "padded signature", f"{payload}.{signature}="
    yield "doubled signature", f"{payload}.{signature}.{signature}"


def header_for(value: str) -> str:
    return f"{COOKIE_NAME}={value}"


def assert_fresh(storage: Any, header: str, label: str, binding: str | None = None) -> None:
    session = storage.get_session(header, binding=binding)
    assert session.is_new and len(session) == 0 and session.id is None, label
    set_cookie = storage.commit_session(session)
    # Nothing saved: at most an expired cookie that clears the bad one.
    assert set_cookie is None or "Expires=Thu, 01 Jan 1970" in set_cookie, (label, set_cookie)


def start(storage: Any, data: dict[str, Any], binding: str | None = None) -> str:
    session = storage.get_session(None, binding=binding)
    session.update(data)
    return request_header(storage.commit_session(session))


@pytest.mark.parametrize("backend", [pytest.param(b, id=b.name) for b in BACKENDS])
def test_tampered_id_cookies_give_a_fresh_session(backend: Backend, build: Any) -> None:
    storage = build(backend)
    victim = start(storage, {"user": "victim"})
    other = start(storage, {"user": "other"})
    value, other_value = find_cookie(victim, COOKIE_NAME), find_cookie(other, COOKIE_NAME)
    assert value and other_value
    assert storage.get_session(victim)["user"] == "victim"  # the untouched cookie works
    count = 0
    for label, tampered in signed_tampers(value, other_value):
        assert_fresh(storage, header_for(tampered), label)
        count += 1
    assert count > 600
    assert storage.get_session(victim)["user"] == "victim"


def test_signed_cookie_storage_tampers_give_a_fresh_session() -> None:
    storage = create_cookie_session_storage(cookie=make_cookie(max_age=60))
    victim, other = start(storage, {"user": "victim"}), start(storage, {"user": "admin"})
    value, other_value = find_cookie(victim, COOKIE_NAME), find_cookie(other, COOKIE_NAME)
    assert value and other_value and storage.get_session(victim)["user"] == "victim"
    for label, tampered in signed_tampers(value, other_value):
        assert_fresh(storage, header_for(tampered), label)


@pytest.mark.parametrize("backend", [pytest.param(BACKENDS[0], id="memory")])
def test_retired_secret_gives_a_fresh_session(backend: Backend, build: Any) -> None:
    retired = build(backend, cookie=make_cookie(secrets=["retired"]))
    header = start(retired, {"user": 1})
    rotating = build(backend, cookie=make_cookie(secrets=[SECRET, "retired"]))
    rotating.store = retired.store
    session = rotating.get_session(header)
    assert session["user"] == 1 and session.resign  # still trusted while in the list
    after = build(backend, cookie=make_cookie(secrets=[SECRET]))
    after.store = retired.store
    assert_fresh(after, header, "retired secret")


def test_empty_secret_is_refused_and_never_verifies() -> None:
    with pytest.raises(ValueError):
        create_cookie(COOKIE_NAME, secrets=[""])
    with pytest.raises(ValueError):
        create_cookie(COOKIE_NAME, secrets=[SECRET, ""])
    cookie = create_cookie(COOKIE_NAME, secrets=[SECRET])
    payload = cookie.sign({"user": 1}).rpartition(".")[0]
    assert cookie.parse(header_for(f"{payload}.{signature_with(b'', payload)}")) is None


def test_cookie_bound_to_another_client_gives_a_fresh_session(build: Any) -> None:
    storage = build(BACKENDS[0])
    header = start(storage, {"user": 1}, binding="Firefox/130")
    assert storage.get_session(header, binding="Firefox/130")["user"] == 1
    for label, binding in [("other agent", "curl/8"), ("no binding", None), ("empty", "")]:
        assert_fresh(storage, header, label, binding=binding)
    # A cookie issued without a binding does not verify once the app binds.
    unbound = start(storage, {"user": 2})
    assert_fresh(storage, unbound, "unbound cookie", binding="Firefox/130")
    assert storage.get_session(header, binding="Firefox/130")["user"] == 1


# -- sealed cookies ---------------------------------------------------------------------------


def sealed_tampers(value: str) -> Iterator[tuple[str, str]]:
    blob = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    for index in range(len(blob)):
        for bit in range(8):
            flipped = bytearray(blob)
            flipped[index] ^= 1 << bit
            yield f"bit {index}.{bit}", base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip("=")
    for length in range(1, len(value)):
        yield f"truncated to {length}", value[:length]
    yield "padded", value + "="
    yield "standard base64 alphabet", value.replace("-", "+").replace("_", "/") + "+"


def sealed_cookie_storage(keys: list[str], like: Any = None) -> Any:
    return create_cookie_session_storage(cookie=create_cookie(COOKIE_NAME, max_age=60), encryption_keys=keys)


def sealed_id_storage(keys: list[str], like: Any = None) -> Any:
    """Sealed ids in front of a memory store (``like``'s store when given)."""
    cookie = create_encrypted_cookie(COOKIE_NAME, keys=keys, max_age=60)
    return SessionStorage(cookie=cookie, store=like.store if like is not None else MemoryStore())


def sealed_storages() -> list[Any]:
    return [
        pytest.param(sealed_cookie_storage, id="cookie-storage"),
        pytest.param(sealed_id_storage, id="memory-with-sealed-ids"),
    ]


@pytest.mark.parametrize("make", sealed_storages())
def test_tampered_sealed_cookies_give_a_fresh_session(make: Any) -> None:
    storage = make(["k" * 32])
    victim = start(storage, {"user": "victim"})
    value = find_cookie(victim, COOKIE_NAME)
    assert value and storage.get_session(victim)["user"] == "victim"
    count = 0
    for label, tampered in sealed_tampers(value):
        assert_fresh(storage, header_for(tampered), label)
        count += 1
    assert count > 700
    assert storage.get_session(victim)["user"] == "victim"


@pytest.mark.parametrize("make", sealed_storages())
def test_sealed_cookie_from_another_name_key_or_client_gives_a_fresh_session(make: Any) -> None:
    storage = make(["k" * 32])
    # Same key, another cookie name: the name is in the associated data.
    other = create_encrypted_cookie("other", keys=["k" * 32]).sign({"data": {"admin": True}, "created": 0})
    assert_fresh(storage, header_for(other), "other cookie name")
    # A retired key: trusted while listed (and re-sealed), refused once removed.
    retired = make(["r" * 32])
    header = start(retired, {"user": 1})
    session = make(["k" * 32, "r" * 32], like=retired).get_session(header)
    assert session["user"] == 1 and session.resign
    assert_fresh(make(["k" * 32], like=retired), header, "retired key")
    # Bound to another client.
    bound = start(storage, {"user": 3}, binding="Firefox/130")
    assert storage.get_session(bound, binding="Firefox/130")["user"] == 3
    assert_fresh(storage, bound, "other client", binding="curl/8")


def test_sealed_cookie_keys_must_be_long_enough() -> None:
    for keys in ([], [""], ["short"], [b"\x00" * 31], ["k" * 31]):
        with pytest.raises((ValueError, TypeError)):
            create_encrypted_cookie(COOKIE_NAME, keys=keys)
    with pytest.raises(ValueError):
        create_encrypted_cookie(COOKIE_NAME, keys="k" * 32)  # a string, not a list of keys


def test_unsigned_cookie_storage_is_refused_by_default() -> None:
    for cookie in (None, create_cookie(COOKIE_NAME), {"name": COOKIE_NAME}):
        with pytest.raises(ConfigurationError, match="forge") as caught:
            create_cookie_session_storage(cookie=cookie)
        assert "secrets=" in (caught.value.solution or "")
    with pytest.raises(ConfigurationError, match="forge"):
        open_store("cookie://")


def test_allow_unsigned_accepts_forged_data_only_after_a_warning(recwarn: Any) -> None:
    import base64
    import json

    from websession import cookie as cookie_module

    cookie_module._warned_unsigned.discard("unsigned-demo")
    storage = create_cookie_session_storage(cookie=create_cookie("unsigned-demo"), allow_unsigned=True)
    warned = [w for w in recwarn.list if "not signed" in str(w.message)]
    assert len(warned) == 1
    create_cookie_session_storage(cookie=create_cookie("unsigned-demo"), allow_unsigned=True)
    assert len([w for w in recwarn.list if "not signed" in str(w.message)]) == 1  # once
    forged = base64.b64encode(json.dumps({"user": "admin"}).encode()).decode()
    assert storage.get_session(f"unsigned-demo={forged}")["user"] == "admin"  # what the opt-in means


def test_sealed_cookie_storage_needs_no_secrets() -> None:
    storage = create_cookie_session_storage(cookie=create_cookie(COOKIE_NAME), encryption_keys=["k" * 32])
    session = storage.get_session(None)
    session["n"] = 1
    assert storage.get_session(storage.commit_session(session))["n"] == 1
