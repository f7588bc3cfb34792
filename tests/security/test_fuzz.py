"""Property-based fuzzing of cookie parsing and of the whole get_session path.

Headers are built from pieces an attacker (or a broken proxy) would send: arbitrary text and
bytes, huge values, non-ASCII and lone surrogates, duplicated and near-miss names, bad
percent-escapes, signatures of every length, and genuinely signed values that were then
bit-flipped, truncated, re-quoted or re-encoded. For every header:

- nothing raises;
- a value (or a stored session) comes back only when the cookie's decoded value is exactly
  one that websession issued with the right secret;
- every id that reaches a store satisfies ``store.is_valid_id`` (signed hostile ids are in
  the pool, so the validator, not the signature, is what stops them).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import warnings
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from websession import (
    create_cookie,
    create_cookie_session_storage,
    create_session_storage,
    generate_id,
)
from websession.cookie import find_cookie
from websession.encryption import create_encrypted_cookie

from .backends import BACKENDS, Backend
from .conftest import COOKIE_NAME, SECRET, IdGuard, make_cookie, request_header

FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: The whole path does store I/O for some headers: fewer examples per store.
FUZZ_STORE = settings(FUZZ, max_examples=120)

HOSTILE_IDS: list[Any] = [
    "../../../../etc/passwd",
    "0" * 39 + "\x00",
    "0" * 40 + "\n",
    "0" * 10_000,
    "A" * 40,
    "\uff10" * 40,  # full-width digits
    "session:*",
    42,
    None,
    ["0" * 40],
    {"$ne": ""},
]

# -- strategies ------------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=60)
BASE64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
ESCAPES = [
    "%",
    "%Z",
    "%2",
    "%ZZ",
    "%00",
    "%C3",
    "%C3%28",
    "%E2%82",
    "%FF",
    "%2B",
    "%2F",
    "%3D",
    "%25",
    "%u00e9",
]
NAMES = st.sampled_from(
    [COOKIE_NAME, COOKIE_NAME, " " + COOKIE_NAME, COOKIE_NAME + "\t", COOKIE_NAME.upper(), "__sess", "x", ""]
)
SEPARATORS = st.sampled_from(["; ", ";", " ; ", ";;", "\t;\t", ", "])


def mutated(pool: list[str]) -> st.SearchStrategy[str]:
    """Issued values, intact or damaged in the ways a tamperer or a proxy would."""
    issued = st.sampled_from(pool)

    def flip(value: str, index: int, bit: int) -> str:
        raw = bytearray(value.encode("utf-8", "surrogatepass"))
        raw[index % len(raw)] ^= 1 << bit
        return raw.decode("utf-8", "replace")

    def with_signature(value: str, signature: str) -> str:
        return value.rpartition(".")[0] + "." + signature

    return st.one_of(
        issued,
        issued,
        issued.map(lambda v: quote(v, safe="")),
        issued.map(lambda v: f'"{v}"'),
        st.builds(flip, issued, st.integers(0, 10_000), st.integers(0, 7)),
        st.builds(lambda v, n: v[: n % (len(v) + 1)], issued, st.integers(0, 10_000)),
        st.builds(with_signature, issued, st.text(st.sampled_from(BASE64_CHARS), max_size=100)),
        st.builds(with_signature, issued, st.sampled_from(pool).map(lambda v: v.rpartition(".")[2])),
        st.builds(lambda v, extra: v + extra, issued, ANY_TEXT),
    )


def values(pool: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        mutated(pool),
        ANY_TEXT,
        st.lists(st.one_of(st.sampled_from(ESCAPES), ANY_TEXT), max_size=8).map("".join),
        st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=6), st.integers(500, 6000)),
        st.builds(
            lambda p, s: f"{p}.{s}",
            st.text(st.sampled_from(BASE64_CHARS), max_size=40),
            st.text(st.sampled_from(BASE64_CHARS), max_size=100),
        ),
    )


def headers(pool: list[str]) -> st.SearchStrategy[str | bytes]:
    pair = st.one_of(
        st.tuples(NAMES, values(pool)).map(lambda p: f"{p[0]}={p[1]}"),
        NAMES,  # a name without "="
        ANY_TEXT,
    )
    joined = st.builds(lambda pairs, sep: sep.join(pairs), st.lists(pair, max_size=6), SEPARATORS)
    return st.one_of(
        joined,
        joined,
        joined.map(lambda h: h.encode("utf-8", "surrogatepass")),
        st.binary(max_size=200),
        st.builds(lambda b, v: b + v.encode("utf-8", "replace"), st.binary(max_size=20), values(pool)),
        st.none(),
    )


def raw_value(header: str | bytes | None) -> str | None:
    return find_cookie(header, COOKIE_NAME)


# -- the cookie layer --------------------------------------------------------------------------


@given(header=st.one_of(ANY_TEXT, st.binary(), st.none()), name=st.text(min_size=1, max_size=10))
@FUZZ
def test_find_cookie_never_raises(header: Any, name: str) -> None:
    found = find_cookie(header, name)
    assert found is None or isinstance(found, str)


def signed_pool(cookie: Any) -> tuple[list[str], dict[str, Any]]:
    issued = {cookie.sign(v): v for v in [generate_id(), {"user": 1}, "x", *HOSTILE_IDS[:4]]}
    return list(issued), issued


def test_signed_cookie_parse_returns_only_what_was_signed() -> None:
    cookie = create_cookie(COOKIE_NAME, secrets=["new", SECRET])
    old = create_cookie(COOKIE_NAME, secrets=[SECRET])
    pool, issued = signed_pool(cookie)
    old_pool, old_issued = signed_pool(old)
    # A value signed for another cookie name with another secret: must never verify.
    foreign = create_cookie("other", secrets=["foreign"]).sign({"admin": True})
    everything = {**issued, **old_issued}

    @given(header=headers([*pool, *old_pool, foreign]))
    @FUZZ
    def check(header: str | bytes | None) -> None:
        verified = cookie.read(header)
        if verified is None:
            return
        raw = raw_value(header)
        assert raw in everything, (header, raw)
        assert verified.value == everything[raw]
        assert verified.stale == (raw in old_issued and raw not in issued)
        # Independently: the signature over the payload is the HMAC of a configured secret.
        payload, _, signature = raw.rpartition(".")
        assert any(
            hmac.compare_digest(
                base64.b64encode(hmac.new(s.encode(), payload.encode(), hashlib.sha256).digest())
                .decode()
                .rstrip("="),
                signature,
            )
            for s in cookie.secrets
        )

    check()


def test_unsigned_cookie_parse_never_raises() -> None:
    cookie = create_cookie(COOKIE_NAME)
    pool = [cookie.sign(v) for v in [{"a": 1}, "x", [1]]] + [base64.b64encode(b"[" * 50_000).decode()]

    @given(header=headers(pool))
    @FUZZ
    def check(header: str | bytes | None) -> None:
        cookie.parse(header)

    check()


def test_encrypted_cookie_opens_only_what_it_sealed() -> None:
    cookie = create_encrypted_cookie(COOKIE_NAME, keys=["k" * 32, "o" * 32])
    old = create_encrypted_cookie(COOKIE_NAME, keys=["o" * 32])
    other_name = create_encrypted_cookie("other", keys=["k" * 32])
    issued = {cookie.sign(v): v for v in [generate_id(), {"user": 1}, "x"]}
    old_issued = {old.sign(v): v for v in [{"user": 2}]}
    foreign = other_name.sign({"admin": True})

    @given(header=headers([*issued, *old_issued, foreign]))
    @FUZZ
    def check(header: str | bytes | None) -> None:
        verified = cookie.read(header)
        if verified is None:
            return
        raw = raw_value(header)
        assert raw in issued or raw in old_issued, (header, raw)
        assert verified.value == {**issued, **old_issued}[raw]
        assert verified.stale == (raw in old_issued)

    check()


# -- the whole get_session path -----------------------------------------------------------------


def fuzz_storage(storage: Any, pool_values: list[Any], expected: dict[str, dict[str, Any]]) -> None:
    """Fuzz both doors of ``storage``. ``expected`` maps each issued raw cookie value that
    leads to stored data to that data; nothing else may produce a non-new session."""
    store = getattr(storage, "store", None)
    guard = IdGuard(store) if store is not None else None
    pool = list(expected) + pool_values
    loop = asyncio.new_event_loop()

    @given(header=headers(pool))
    @FUZZ_STORE
    def check(header: str | bytes | None) -> None:
        for session in (storage.get_session(header), loop.run_until_complete(storage.aget_session(header))):
            if session.is_new:
                assert len(session) == 0 and session.id is None
                continue
            raw = raw_value(header)
            assert raw in expected, (header, raw)
            assert dict(session) == expected[raw]
        if guard is not None:
            assert guard.bad == [], guard.bad[:3]

    try:
        check()
    finally:
        # Async pools belong to the loop that opened them: close them there.
        loop.run_until_complete(storage.aclose())
        loop.close()
    if guard is not None:
        assert guard.seen, "no fuzzed header ever reached the store: the pool is not exercised"


def issue(storage: Any, count: int = 3) -> dict[str, dict[str, Any]]:
    """Commit ``count`` real sessions; map each raw cookie value to its data."""
    expected: dict[str, dict[str, Any]] = {}
    for n in range(count):
        session = storage.get_session(None)
        session["owner"] = n
        header = request_header(storage.commit_session(session))
        raw = raw_value(header)
        assert raw is not None
        expected[raw] = {"owner": n}
    return expected


def hostile_pool(storage: Any) -> list[str]:
    """Signed with the right secret, so only validation and lookup stand in the way."""
    return [storage.cookie.sign(value) for value in [generate_id(), *HOSTILE_IDS]]


FUZZED_BACKENDS = [
    pytest.param(b, id=b.name) for b in BACKENDS if b.name in ("memory", "file", "sqlite", "postgres")
]


@pytest.mark.parametrize("backend", FUZZED_BACKENDS)
def test_get_session_on_a_store_never_leaks_or_raises(backend: Backend, build: Any) -> None:
    storage = build(backend)
    fuzz_storage(storage, hostile_pool(storage), issue(storage))


def test_get_session_on_a_custom_store_never_leaks_or_raises() -> None:
    db: dict[str, dict[str, Any]] = {}

    def create_data(data: Any, expires: Any) -> str:
        id = generate_id()
        db[id] = dict(data)
        return id

    storage = create_session_storage(
        cookie=make_cookie(),
        create_data=create_data,
        read_data=db.get,
        update_data=lambda id, data, expires: db.__setitem__(id, dict(data)),
        delete_data=lambda id: db.pop(id, None),
        # A validator written for strings only: it raises on everything else.
        is_valid_id=lambda value: len(value) == 40 and value.isalnum() and value.isascii(),
    )
    fuzz_storage(storage, hostile_pool(storage), issue(storage))


def test_get_session_on_unsigned_id_cookies_never_raises(build: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = build(BACKENDS[0], cookie=make_cookie(secrets=[]))
    expected = issue(storage)
    pool = [*hostile_pool(storage), base64.b64encode(b'"' + b"[" * 50_000).decode()]
    fuzz_storage(storage, pool, expected)


@pytest.mark.parametrize("encrypted", [False, True], ids=["signed", "encrypted"])
def test_get_session_on_cookie_storage_never_leaks_or_raises(encrypted: bool) -> None:
    keys = ["e" * 32] if encrypted else None
    storage = create_cookie_session_storage(cookie=make_cookie(max_age=3600), encryption_keys=keys)
    expected = issue(storage)
    others = [storage.cookie.sign(v) for v in (["not", "a", "dict"], "text", 7)]
    if encrypted:
        # A signed cookie with the same name must not open as a sealed one, and vice versa.
        others.append(create_cookie(COOKIE_NAME, secrets=[SECRET]).sign({"owner": 0}))
    fuzz_storage(storage, others, expected)
