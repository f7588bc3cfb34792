"""Oversized sessions are refused cleanly: a clear error, and nothing half-written.

- cookie storage (signed and sealed): a Set-Cookie over 4096 bytes raises CookieTooLargeError;
- DynamoDB: an item over 400 KB raises RecordTooLargeError, on create and on update, and the
  stored item is unchanged;
- Workers KV: a value over 25 MiB raises RecordTooLargeError before anything is sent;
- memcached: a record over the item limit (``max_item_size``, memcached's ``-I``, 1 MiB by
  default) raises RecordTooLargeError before anything is sent, on create and on update, and
  the stored record is unchanged.

The other stores (memory, file, SQLite, PostgreSQL) have no item limit of their own below what
their hosts allow; docs/security.md says so.
"""

from __future__ import annotations

from typing import Any

import pytest

from websession import (
    CookieTooLargeError,
    RecordTooLargeError,
    create_cookie,
    create_cookie_session_storage,
)
from websession.storage import MAX_COOKIE_SIZE
from websession.stores.workers_kv import MAX_VALUE_BYTES

from .backends import BACKENDS
from .conftest import COOKIE_NAME, SECRET, request_header


@pytest.mark.parametrize("keys", [None, ["k" * 32]], ids=["signed", "sealed"])
def test_cookie_storage_refuses_more_than_4096_bytes(keys: list[str] | None) -> None:
    storage = create_cookie_session_storage(
        cookie=create_cookie(COOKIE_NAME, secrets=[SECRET], max_age=60), encryption_keys=keys
    )
    session = storage.get_session(None)
    session["user"] = 1
    header = request_header(storage.commit_session(session))
    # Grow a value until the cookie is just under, then just over the limit.
    session = storage.get_session(header)
    size = 100
    while True:
        session["blob"] = "x" * size
        try:
            set_cookie = storage.commit_session(session)
        except CookieTooLargeError as exc:
            assert "4096" in str(exc)
            break
        assert set_cookie is not None and len(set_cookie.encode()) <= MAX_COOKIE_SIZE
        size += 64
    assert size > 2000
    # The refused commit changed nothing the browser holds: its cookie still opens, and the
    # session can be committed once it is small again.
    assert dict(storage.get_session(header)) == {"user": 1}
    session["blob"] = "small"
    assert storage.commit_session(session) is not None
    # Non-ASCII counts in bytes, not characters.
    session = storage.get_session(None)
    session["text"] = "€" * 1400  # 4200 bytes of UTF-8 in 1400 characters
    with pytest.raises(CookieTooLargeError):
        storage.commit_session(session)


def test_dynamodb_refuses_items_over_400_kb(build: Any) -> None:
    storage = build(next(b for b in BACKENDS if b.name == "dynamodb"))
    session = storage.get_session(None)
    session["blob"] = "x" * (401 * 1024)
    with pytest.raises(RecordTooLargeError):
        storage.commit_session(session)
    assert session.is_new  # nothing stored, nothing half-committed
    session["blob"] = "x" * (300 * 1024)
    header = request_header(storage.commit_session(session))
    session = storage.get_session(header)
    session["more"] = "y" * (150 * 1024)
    with pytest.raises(RecordTooLargeError):
        storage.commit_session(session)
    stored = storage.get_session(header)
    assert set(stored) == {"blob"} and len(stored["blob"]) == 300 * 1024


def test_workers_kv_refuses_values_over_25_mib_before_sending(build: Any) -> None:
    storage = build(next(b for b in BACKENDS if b.name == "workers-kv"))
    sent: list[str] = []
    original = storage.store.rest.send
    storage.store.rest.send = lambda call, **kw: (sent.append(call.method), original(call, **kw))[1]
    session = storage.get_session(None)
    session["blob"] = "x" * (MAX_VALUE_BYTES + 1)
    with pytest.raises(RecordTooLargeError):
        storage.commit_session(session)
    assert sent == []


def test_memcache_refuses_records_over_the_item_limit(build: Any) -> None:
    backend = next(b for b in BACKENDS if b.name == "memcache")
    storage = build(backend)
    limit = storage.store.max_item_size
    sent: list[str] = []
    original = storage.store._call
    storage.store._call = lambda op: (sent.append(op.name), original(op))[1]
    session = storage.get_session(None)
    session["blob"] = "x" * limit
    with pytest.raises(RecordTooLargeError) as raised:
        storage.commit_session(session)
    assert str(limit) in str(raised.value)
    assert session.is_new and sent == []
    session["blob"] = "x" * (limit // 2)
    header = request_header(storage.commit_session(session))
    session = storage.get_session(header)
    session["more"] = "y" * (limit // 2)
    sent.clear()
    with pytest.raises(RecordTooLargeError):
        storage.commit_session(session)
    assert "cas" not in sent  # refused before the write
    stored = storage.get_session(header)
    assert set(stored) == {"blob"} and len(stored["blob"]) == limit // 2
