"""The stores that need no server: cookie, memory, file, sqlite and custom callbacks."""

from __future__ import annotations

import pytest

from websession import (
    create_cookie_session_storage,
    create_file_session_storage,
    create_memory_session_storage,
    create_session_storage,
    create_sqlite_session_storage,
    generate_id,
)

from ..harness import Options
from . import StoreCase, ttl_option


def _common(options: Options) -> dict:
    return {
        "cookie": options.cookie,
        "clock": options.clock,
        "rolling": options.rolling,
        "save_uninitialized": options.save_uninitialized,
    }


def _server_side(options: Options) -> dict:
    return {**_common(options), **ttl_option(options, "default_ttl")}


def make_cookie(request: pytest.FixtureRequest, options: Options):
    return create_cookie_session_storage(**_common(options))


def make_memory(request: pytest.FixtureRequest, options: Options):
    return create_memory_session_storage(**_server_side(options))


def make_file(request: pytest.FixtureRequest, options: Options):
    directory = request.getfixturevalue("tmp_path") / "sessions"
    return create_file_session_storage(dir=directory, **_server_side(options))


def make_sqlite(request: pytest.FixtureRequest, options: Options):
    path = request.getfixturevalue("tmp_path") / "sessions.db"
    return create_sqlite_session_storage(path=path, **_server_side(options))


def make_custom(request: pytest.FixtureRequest, options: Options):
    """The Remix createSessionStorage example: a dict as 'the database'."""
    db: dict[str, tuple[dict, object]] = {}
    clock = options.clock

    def create_data(data, expires):
        id = generate_id()
        db[id] = (dict(data), expires)
        return id

    def read_data(id):
        entry = db.get(id)
        if entry is None or (entry[1] is not None and entry[1] <= clock()):
            return None
        return entry[0]

    def update_data(id, data, expires):
        db[id] = (dict(data), expires)

    def delete_data(id):
        db.pop(id, None)

    def touch_data(id, expires):
        if id in db:
            db[id] = (db[id][0], expires)

    return create_session_storage(
        create_data=create_data,
        read_data=read_data,
        update_data=update_data,
        delete_data=delete_data,
        touch_data=touch_data,
        **_server_side(options),
    )


CASES = [
    StoreCase("cookie", make_cookie, server_side=False),
    StoreCase("memory", make_memory),
    StoreCase("file", make_file),
    StoreCase("sqlite", make_sqlite),
    StoreCase("custom", make_custom),
]
