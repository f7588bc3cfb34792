"""Path traversal and key injection through the id, and through session keys.

The hostile ids are signed with the right secret, so the signature does not stop them: the id
validation in front of every store must. Then, directly at the store, each store's own
addressing is checked: the keys it builds never leave its namespace (directory, table,
prefix). Session *keys* (user data) with quotes, path and expression syntax round-trip as
plain data.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from websession import generate_id
from websession.ids import is_valid_id

from .backends import BACKENDS, Backend
from .conftest import IdGuard, Runner, request_header

HOSTILE_IDS: list[Any] = [
    "../../../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "0000/../../../../tmp/x",
    "0" * 36 + "/../",
    "/" + "0" * 39,
    "0" * 39 + "\x00",
    "\x00" * 40,
    "0000\x00" + "0" * 35,
    "0" * 40 + "\n",
    "0" * 40 + "\r\n",
    " " + "0" * 39,
    "0" * 40 + " ",
    "A" * 40,  # upper case: distinct file on case-sensitive systems, the same on others
    "\uff10" * 40,  # full-width digits match \d, not [0-9]
    "\u0660" * 40,  # Arabic-Indic digits
    "0" * 39,
    "0" * 41,
    "0" * 10_000,
    "*",
    "session:*",
    "session:" + "0" * 32,
    "0" * 20 + ":" + "0" * 19,
    "' OR '1'='1",
    "0' OR '1'='1' --" + "0" * 24,
    '{"$ne": null}',
    "#i",
    ":now",
    "0" * 40 + "/metadata",
    "",
    42,
    4.2,
    True,
    None,
    ["0" * 40],
    {"$ne": ""},
    {"id": "0" * 40},
]


def test_the_validator_accepts_only_40_lowercase_ascii_hex_characters() -> None:
    assert is_valid_id(generate_id())
    for value in HOSTILE_IDS:
        assert not is_valid_id(value), repr(value)[:60]


@pytest.mark.parametrize("backend", [pytest.param(b, id=b.name) for b in BACKENDS])
def test_hostile_ids_never_reach_the_store(backend: Backend, build: Any, arun: Runner, tmp_path: Any) -> None:
    storage = build(backend)
    guard = IdGuard(storage.store)
    before = sorted(backend.raw(storage).stored_keys())
    for value in HOSTILE_IDS:
        header = storage.cookie.serialize(value).split(";")[0]
        for session in (storage.get_session(header), arun.run(storage.aget_session(header))):
            assert session.is_new and session.id is None, repr(value)[:60]
            # Writing into the fresh session never reuses the hostile id.
            session["user"] = 1
            storage.commit_session(session)
            assert session.id is not None and is_valid_id(session.id)
            storage.destroy_session(session)
    assert guard.bad == []
    assert {id for id in guard.seen if not is_valid_id(id)} == set()
    assert sorted(backend.raw(storage).stored_keys()) == before  # every session made here was destroyed


def test_file_store_paths_stay_inside_its_directory(build: Any, tmp_path: Any) -> None:
    storage = build(next(b for b in BACKENDS if b.name == "file"))
    root = os.path.realpath(storage.store.dir)
    for id in [generate_id() for _ in range(50)]:
        path = os.path.realpath(storage.store.path_of(id))
        assert os.path.commonpath([root, path]) == root and os.path.dirname(os.path.dirname(path)) == root
    # Listing ignores anything that is not a record file name (planted links and dot files).
    outside = tmp_path / "outside"
    outside.write_text('{"data":{"stolen":1}}')
    shard = storage.store.dir / "0000"
    shard.mkdir()
    (shard / "link").symlink_to(outside)
    (shard / ".hidden").write_text('{"data":{}}')
    assert [key for key, _ in storage.store.scan()] == []


def test_workers_kv_keys_are_escaped_into_one_path_segment(build: Any) -> None:
    storage = build(next(b for b in BACKENDS if b.name == "workers-kv"))
    id = generate_id()
    url = storage.store.url_for(id)
    assert url.startswith(storage.store.base_url + "/values/")
    segment = url[len(storage.store.base_url + "/values/") :]
    assert "/" not in segment and "?" not in segment and "#" not in segment


AWKWARD_KEYS = {
    "'; DROP TABLE websession_sessions; --": "sql",
    '") OR 1=1 --': "sql",
    "#i": "dynamodb name placeholder",
    ":now": "dynamodb value placeholder",
    "a.b": "dynamodb path",
    "a[0]": "dynamodb index",
    "../../etc/passwd": "path",
    "__proto__": "javascript",
    "constructor": "javascript",
    "$where": "mongo",
    "key with spaces and ünïcödé 😀": "text",
    "\u2028\u2029": "line separators",
}


@pytest.mark.parametrize("backend", [pytest.param(b, id=b.name) for b in BACKENDS])
def test_awkward_session_keys_are_plain_data(backend: Backend, build: Any) -> None:
    storage = build(backend)
    session = storage.get_session(None)
    for key, kind in AWKWARD_KEYS.items():
        session[key] = kind
    header = request_header(storage.commit_session(session))
    assert dict(storage.get_session(header)) == AWKWARD_KEYS
    # And as a change set applied to a stored record.
    session = storage.get_session(header)
    for key in list(AWKWARD_KEYS)[::2]:
        del session[key]
    session["'; --"] = "added"
    storage.commit_session(session)
    expected = {k: v for i, (k, v) in enumerate(AWKWARD_KEYS.items()) if i % 2} | {"'; --": "added"}
    assert dict(storage.get_session(header)) == expected
