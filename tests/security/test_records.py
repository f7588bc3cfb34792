"""Records that are corrupt, truncated, of the wrong type or a planted pickle.

Each is written behind the store's back under a live id; reading it through both doors must
give a fresh session and log a warning (never raise, never return partial data), and the
next commit must work and issue a new id. A planted pickle is never unpickled: the file its
payload would create never appears. And nothing in websession imports a deserializer that
can run code.
"""

from __future__ import annotations

import ast
import logging
import pathlib
import pickle
from typing import Any

import pytest

from websession import generate_id

from .backends import BACKENDS, Backend
from .conftest import Runner, request_header

VALID = b'{"user":1,"cart":[1,2]}'
#: Bytes that are no record, in any store's format.
COMMON = {
    "empty": b"",
    "truncated": VALID[: len(VALID) // 2],
    "not utf-8": b"\xff\xfe\x00garbage\x80",
    "array": b"[1,2]",
    "string": b'"text"',
    "number": b"42",
    "null": b"null",
    "bool": b"true",
    "deep nesting": b"[" * 100_000,
    "nul bytes": b"\x00" * 16,
}
FILE_SPECIFIC = {
    "bare data object": VALID,  # the file format wraps data: {"data": ..., "expires": ...}
    "data is a list": b'{"data":[1]}',
    "expires is a number": b'{"data":{"user":1},"expires":12345}',
    "expires is not a date": b'{"data":{"user":1},"expires":"tomorrow"}',
    "expires has no zone": b'{"data":{"user":1},"expires":"2999-01-01T00:00:00"}',
    "truncated wrapper": b'{"data":{"user":1},"expi',
    "directory": "directory",
}
SQLITE_SPECIFIC = {
    "blob": b"\x80\x04\x95binary",
    "integer": 42,
    "expires is text": (VALID.decode(), "tomorrow"),
    "expires is a blob": (VALID.decode(), b"\x00"),
    "expires out of range": (VALID.decode(), 1e300),
}
POSTGRES_SPECIFIC = {
    "array": "[1, 2]",
    "string": '"text"',
    "number": "42",
    "null": "null",
    "bool": "true",
}
DYNAMO_SPECIFIC = {
    "binary attribute": {"data": {"B": b"\x80\x04binary"}},
    "string set": {"data": {"SS": ["a", "b"]}},
    "number set": {"data": {"NS": ["1"]}},
    "ttl is text": {"user": {"N": "1"}, "_ttl": {"S": "tomorrow"}},
    "ttl is a bool": {"user": {"N": "1"}, "_ttl": {"BOOL": True}},
}


REDIS_TYPES = {
    "a list": ("list", ["a"]),
    "a set": ("set", ["a"]),
    "a sorted set": ("zset", {"a": 1}),
}
REDIS_SPECIFIC = {**REDIS_TYPES, "a hash": ("hash", {"a": "1"})}
REDIS_HASH_SPECIFIC = {
    **REDIS_TYPES,
    "a string": VALID,
    "field not JSON": ("hash", {"a": "not json"}),
    "field truncated": ("hash", {"a": '{"b":'}),
    "field name not utf-8": ("hash", {b"\xff\xfe": "1"}),
    "field value not utf-8": ("hash", {"a": b"\xff\xfe"}),
}


def corruptions(backend: Backend) -> dict[str, Any]:
    if backend.name == "file":
        return {**COMMON, **FILE_SPECIFIC}
    if backend.name == "sqlite":
        return {**{k: v.decode("latin-1") for k, v in COMMON.items() if k != "not utf-8"}, **SQLITE_SPECIFIC}
    if backend.name == "postgres":
        return POSTGRES_SPECIFIC
    if backend.name == "dynamodb":
        return DYNAMO_SPECIFIC
    if backend.name in ("redis", "upstash"):
        return {**COMMON, **REDIS_SPECIFIC}
    if backend.name == "redis-hash":
        return REDIS_HASH_SPECIFIC
    return dict(COMMON)


def plant(storage: Any, backend: Backend, raw: Any) -> tuple[str, str]:
    """Write ``raw`` under a fresh valid id; return the id and a Cookie header naming it."""
    id = generate_id(storage.store.clock().timestamp())
    backend.raw(storage).put(storage.store.storage_key(id), raw)
    return id, storage.cookie.serialize(id).split(";")[0]


def warned(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        r.name == "websession" and r.levelno == logging.WARNING and "unreadable" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize("backend", [pytest.param(b, id=b.name) for b in BACKENDS])
def test_corrupt_records_give_a_fresh_session_and_a_warning(
    backend: Backend, build: Any, arun: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    storage = build(backend)
    caplog.set_level(logging.WARNING, logger="websession")
    for label, raw in corruptions(backend).items():
        id, header = plant(storage, backend, raw)
        for door in ("sync", "async"):
            caplog.clear()
            if door == "sync":
                session = storage.get_session(header)
            else:
                session = arun.run(storage.aget_session(header))
            assert session.is_new and len(session) == 0 and session.id is None, (label, door)
            assert warned(caplog), f"{label} ({door}): no warning logged"
        session["user"] = 2
        set_cookie = storage.commit_session(session)
        assert session.id is not None and session.id != id, label
        assert storage.get_session(request_header(set_cookie))["user"] == 2


def test_an_update_of_a_record_that_turned_corrupt_does_not_raise(build: Any) -> None:
    for backend in (b for b in BACKENDS if b.name in ("memory", "file", "sqlite")):
        storage = build(backend)
        session = storage.get_session(None)
        session["user"] = 1
        header = request_header(storage.commit_session(session))
        session = storage.get_session(header)
        backend.raw(storage).put(storage.store.storage_key(session.id), b"\x00garbage")
        session["user"] = 2
        set_cookie = storage.commit_session(session)
        # The record is unreadable, so it counts as gone: the session ends, nothing is revived.
        assert set_cookie is not None and "Expires=Thu, 01 Jan 1970" in set_cookie, backend.name
        assert storage.get_session(header).is_new


# -- pickle -------------------------------------------------------------------------------------


class Exploit:
    """Unpickling this creates a file: proof that a pickle ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


PICKLE_BACKENDS = [pytest.param(b, id=b.name) for b in BACKENDS if b.name != "postgres"]


@pytest.mark.parametrize("backend", PICKLE_BACKENDS)
def test_a_planted_pickle_is_never_executed(
    backend: Backend, build: Any, arun: Runner, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The payload is live: unpickling it does create its file.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Exploit(str(probe)))).close()
    assert probe.exists()

    marker = tmp_path / "pwned"
    payload = pickle.dumps(Exploit(str(marker)), protocol=pickle.HIGHEST_PROTOCOL)
    storage = build(backend)
    caplog.set_level(logging.WARNING, logger="websession")
    raw: Any = payload
    if backend.name == "dynamodb":
        raw = {"data": {"B": payload}}
    elif backend.name == "redis-hash":
        raw = ("hash", {"data": payload})
    _, header = plant(storage, backend, raw)
    assert storage.get_session(header).is_new
    assert arun.run(storage.aget_session(header)).is_new
    assert warned(caplog)
    assert not marker.exists()


def test_a_pickle_stored_as_a_json_string_stays_a_string(build: Any, tmp_path: pathlib.Path) -> None:
    """PostgreSQL's jsonb cannot hold raw bytes; the nearest plant is a value holding the pickle
    as text, which must come back as that text and nothing else."""
    backend = next(b for b in BACKENDS if b.name == "postgres")
    marker = tmp_path / "pwned"
    text = pickle.dumps(Exploit(str(marker)), protocol=0).decode("latin-1")
    storage = build(backend)
    import json

    _, header = plant(storage, backend, json.dumps({"blob": text}))
    assert storage.get_session(header)["blob"] == text
    assert not marker.exists()


DESERIALIZERS = {
    "pickle",
    "cPickle",
    "_pickle",
    "marshal",
    "shelve",
    "dill",
    "cloudpickle",
    "jsonpickle",
    "yaml",
}


def test_no_code_running_deserializer_is_imported_anywhere_in_websession() -> None:
    source = pathlib.Path(__file__).resolve().parents[2] / "src" / "websession"
    offenders = []
    files = list(source.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
                names = [getattr(node.args[0], "value", "")] if node.args else []
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n in DESERIALIZERS]
    assert offenders == []
