"""Every server-side store, built for the security suite, with raw access to what it stores.

``Backend.make(request, cookie=..., ...)`` returns a storage; ``Backend.raw(storage)`` gives a
:class:`Raw` that writes bytes under a storage key behind the store's back (to plant corrupt
records and pickles) and dumps everything the store holds (to look for leaked ids).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from websession import (
    create_file_session_storage,
    create_memory_session_storage,
    create_sqlite_session_storage,
)
from websession.stores.base import utcnow


class Raw:
    """Behind-the-back access to one store's records."""

    def put(self, key: str, raw: Any) -> None:
        """Store ``raw`` (bytes, or a store-native value) as the record under ``key``."""
        raise NotImplementedError

    def dump(self) -> bytes:
        """Everything the store holds for this test, keys and values, as bytes."""
        raise NotImplementedError

    def stored_keys(self) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[..., Any]
    raw: Callable[[Any], Raw]
    #: Expiry is checked with the store's clock, so a fake clock applies (else the server's
    #: TTLs decide, and only real time expires a record).
    fake_clock: bool = True

    def __str__(self) -> str:
        return self.name


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("clock", utcnow)
    return kwargs


# -- memory ----------------------------------------------------------------------------------


def make_memory(request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    return create_memory_session_storage(**_options(kwargs))


class MemoryRaw(Raw):
    def __init__(self, storage: Any) -> None:
        self.store = storage.store

    def put(self, key: str, raw: Any) -> None:
        self.store._records[key] = (raw, None)

    def dump(self) -> bytes:
        return b"\n".join(k.encode() + b"=" + bytes(v[0]) for k, v in self.store._records.items())

    def stored_keys(self) -> list[str]:
        return list(self.store._records)


# -- file ------------------------------------------------------------------------------------


def make_file(request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    directory = request.getfixturevalue("tmp_path_factory").mktemp("sessions")
    return create_file_session_storage(dir=directory, **_options(kwargs))


class FileRaw(Raw):
    def __init__(self, storage: Any) -> None:
        self.dir = storage.store.dir

    def put(self, key: str, raw: Any) -> None:
        path = self.dir / key[:4] / key[4:]
        path.parent.mkdir(parents=True, exist_ok=True)
        if raw == "directory":
            path.mkdir()
        else:
            path.write_bytes(raw)

    def dump(self) -> bytes:
        parts = []
        for folder, _, files in os.walk(self.dir):
            for name in files:
                full = os.path.join(folder, name)
                parts.append(full.encode())
                with open(full, "rb") as handle:
                    parts.append(handle.read())
        return b"\n".join(parts)

    def stored_keys(self) -> list[str]:
        return [
            shard.name + path.name
            for shard in self.dir.iterdir()
            if shard.is_dir()
            for path in shard.iterdir()
            if not path.name.startswith(".")
        ]


# -- sqlite ----------------------------------------------------------------------------------


def make_sqlite(request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    path = request.getfixturevalue("tmp_path_factory").mktemp("sqlite") / "sessions.db"
    return create_sqlite_session_storage(path=path, **_options(kwargs))


class SqliteRaw(Raw):
    def __init__(self, storage: Any) -> None:
        self.path = storage.store.path
        self.table = storage.store.table

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None, timeout=10)

    def put(self, key: str, raw: Any) -> None:
        expires = None
        if isinstance(raw, tuple):  # (data, expires): a wrong-type expiry
            raw, expires = raw
        db = self._db()
        try:
            db.execute(
                f"INSERT OR REPLACE INTO {self.table} (id, data, expires) VALUES (?, ?, ?)",
                (key, raw, expires),
            )
        finally:
            db.close()

    def dump(self) -> bytes:
        db = self._db()
        try:
            rows = db.execute(f"SELECT id, data, expires FROM {self.table}").fetchall()
        finally:
            db.close()
        # The database files too (the write-ahead log holds recent pages): what an attacker
        # would copy.
        whole = b""
        for path in (self.path, self.path + "-wal"):
            if os.path.exists(path):
                with open(path, "rb") as handle:
                    whole += handle.read()
        return repr(rows).encode() + whole

    def stored_keys(self) -> list[str]:
        db = self._db()
        try:
            return [row[0] for row in db.execute(f"SELECT id FROM {self.table}")]
        finally:
            db.close()


# -- postgres --------------------------------------------------------------------------------


def make_postgres(request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    from websession import create_postgres_session_storage

    return create_postgres_session_storage(dsn=request.getfixturevalue("postgres_dsn"), **_options(kwargs))


class PostgresRaw(Raw):
    def __init__(self, storage: Any) -> None:
        self.dsn = storage.store.dsn
        self.table = storage.store.table
        storage.store.setup()

    def put(self, key: str, raw: Any) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                f"INSERT INTO {self.table} (id, data, expires) VALUES (%s, %s::jsonb, NULL) "
                "ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, expires = NULL",
                (key, raw.decode() if isinstance(raw, bytes) else raw),
            )

    def dump(self) -> bytes:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(f"SELECT id, data::text, expires FROM {self.table}").fetchall()
        return repr(rows).encode()

    def stored_keys(self) -> list[str]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return [row[0] for row in conn.execute(f"SELECT id FROM {self.table}")]


# -- dynamodb --------------------------------------------------------------------------------


def make_dynamodb(request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    from websession import create_dynamodb_session_storage

    from ..servers.moto import MOTO_CLIENT_OPTIONS, MOTO_REGION

    return create_dynamodb_session_storage(
        table=request.getfixturevalue("dynamodb_table"),
        client=request.getfixturevalue("dynamodb_client"),
        endpoint_url=request.getfixturevalue("moto_endpoint"),
        region=MOTO_REGION,
        client_options=MOTO_CLIENT_OPTIONS,
        **_options(kwargs),
    )


class DynamoRaw(Raw):
    def __init__(self, storage: Any) -> None:
        self.store = storage.store
        self.client = storage.store._sync()

    def put(self, key: str, raw: Any) -> None:
        # bytes: a binary attribute holding them; a dict: native attribute values as given.
        attributes = raw if isinstance(raw, dict) else {"data": {"B": raw}}
        self.client.put_item(TableName=self.store.table, Item={self.store.idx: {"S": key}, **attributes})

    def _items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": self.store.table}
        while True:
            page = self.client.scan(**request)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def dump(self) -> bytes:
        return repr(self._items()).encode()

    def stored_keys(self) -> list[str]:
        return [item[self.store.idx]["S"] for item in self._items()]


# -- workers kv ------------------------------------------------------------------------------


def make_workers_kv(request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    import secrets

    from websession import create_workers_kv_session_storage

    server = request.getfixturevalue("kv_server")
    return create_workers_kv_session_storage(
        base_url=server.base_url,
        api_token=server.api_token,
        prefix=f"sec-{secrets.token_hex(4)}:",
        **_options(kwargs),
    )


class KVRaw(Raw):
    def __init__(self, storage: Any) -> None:
        import httpx

        self.store = storage.store
        self.client = httpx.Client(headers=storage.store.rest._headers, timeout=10)

    def put(self, key: str, raw: Any) -> None:
        response = self.client.put(self.store._value_url(key), content=raw)
        response.raise_for_status()

    def stored_keys(self) -> list[str]:
        response = self.client.get(f"{self.store.base_url}/keys", params={"prefix": self.store.prefix})
        response.raise_for_status()
        return [entry["name"][len(self.store.prefix) :] for entry in response.json()["result"]]

    def dump(self) -> bytes:
        parts = []
        for key in self.stored_keys():
            parts.append(key.encode())
            parts.append(self.client.get(self.store._value_url(key)).content)
        return b"\n".join(parts)


# -- redis and upstash (the local Upstash server fronts the shared Redis) -------------------


def make_redis(request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    from websession import create_redis_session_storage

    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return create_redis_session_storage(url=url, prefix=prefix, **_options(kwargs))


def make_redis_hash(request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    return make_redis(request, layout="hash", **kwargs)


def make_upstash(request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    from websession import create_upstash_session_storage

    server = request.getfixturevalue("upstash_server")
    prefix = request.getfixturevalue("redis_prefix")
    return create_upstash_session_storage(
        url=server.url, token=server.token, prefix=prefix, **_options(kwargs)
    )


class RedisRaw(Raw):
    """The Redis behind a Redis or Upstash store, under the store's prefix only."""

    def __init__(self, storage: Any) -> None:
        import redis

        from ..servers.redis import REDIS_HOST, REDIS_PORT

        self.prefix = storage.store.prefix
        self.client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)

    def put(self, key: str, raw: Any) -> None:
        name = self.prefix + key
        self.client.delete(name)
        if isinstance(raw, tuple):  # (redis type, value): a key of another type
            kind, value = raw
            {"list": self.client.rpush, "set": self.client.sadd}.get(kind, lambda n, *v: None)(name, *value)
            if kind == "hash":
                self.client.hset(name, mapping=value)
            if kind == "zset":
                self.client.zadd(name, value)
        else:
            self.client.set(name, raw)

    def stored_keys(self) -> list[str]:
        return [
            key.decode()[len(self.prefix) :]
            for key in self.client.scan_iter(match=self.prefix.replace("*", "\\*") + "*", count=1000)
        ]

    def dump(self) -> bytes:
        parts = []
        for key in self.stored_keys():
            name = self.prefix + key
            parts.append(name.encode())
            parts.append(self.client.dump(name) or b"")  # the RDB serialisation a dump holds
        return b"\n".join(parts)


# -- memcached -------------------------------------------------------------------------------


def make_memcache(request: pytest.FixtureRequest, **kwargs: Any) -> Any:
    from websession import create_memcache_session_storage

    server = request.getfixturevalue("memcached_server")
    prefix = request.getfixturevalue("memcache_prefix")
    return create_memcache_session_storage(servers=[server.address], prefix=prefix, **_options(kwargs))


class MemcacheRaw(Raw):
    def __init__(self, storage: Any) -> None:
        self.store = storage.store
        self.server = storage.store.servers[0]

    def _command(self, line: bytes, payload: bytes | None = None) -> bytes:
        import socket

        with socket.create_connection((self.server.host, self.server.port), timeout=5) as sock:
            sock.sendall(line + b"\r\n" + (payload + b"\r\n" if payload is not None else b""))
            reply = b""
            while not reply.endswith((b"END\r\n", b"STORED\r\n", b"ERROR\r\n")):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply

    def put(self, key: str, raw: Any) -> None:
        name = (self.store.prefix + key).encode()
        reply = self._command(b"set %s 0 0 %d" % (name, len(raw)), raw)
        assert reply.startswith(b"STORED"), reply

    def stored_keys(self) -> list[str]:
        from urllib.parse import unquote

        listing = self._command(b"lru_crawler metadump all").decode()
        keys = [
            unquote(part[4:])
            for line in listing.splitlines()
            for part in line.split()
            if part.startswith("key=")
        ]
        return [key[len(self.store.prefix) :] for key in keys if key.startswith(self.store.prefix)]

    def dump(self) -> bytes:
        parts = []
        for key in self.stored_keys():
            name = (self.store.prefix + key).encode()
            parts.append(name + b"\n" + self._command(b"get " + name))
        return b"\n".join(parts)


BACKENDS = [
    Backend("memory", make_memory, MemoryRaw),
    Backend("file", make_file, FileRaw),
    Backend("sqlite", make_sqlite, SqliteRaw),
    Backend("postgres", make_postgres, PostgresRaw),
    Backend("dynamodb", make_dynamodb, DynamoRaw),
    Backend("workers-kv", make_workers_kv, KVRaw),
    Backend("redis", make_redis, RedisRaw, fake_clock=False),
    Backend("redis-hash", make_redis_hash, RedisRaw, fake_clock=False),
    Backend("upstash", make_upstash, RedisRaw, fake_clock=False),
    Backend("memcache", make_memcache, MemcacheRaw, fake_clock=False),
]


def backend_params(*names: str) -> list[Any]:
    """pytest params for the named backends (all when none are named)."""
    chosen = [b for b in BACKENDS if not names or b.name in names]
    return [pytest.param(b, id=b.name) for b in chosen]
