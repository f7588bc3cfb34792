from __future__ import annotations

import asyncio
from typing import Any

import pytest

from websession import (
    ConfigurationError,
    SessionStoreError,
    create_cookie,
    create_session_storage,
    generate_id,
)


def async_storage() -> tuple[Any, dict[str, Any]]:
    db: dict[str, Any] = {}

    async def create_data(data: Any, expires: Any) -> str:
        id = generate_id()
        db[id] = dict(data)
        return id

    async def read_data(id: str) -> Any:
        return db.get(id)

    async def update_data(id: str, data: Any, expires: Any) -> None:
        db[id] = dict(data)

    async def delete_data(id: str) -> None:
        db.pop(id, None)

    storage = create_session_storage(
        cookie=create_cookie("s", secrets=["k"]),
        create_data=create_data,
        read_data=read_data,
        update_data=update_data,
        delete_data=delete_data,
    )
    return storage, db


def test_async_callbacks_serve_the_async_door() -> None:
    storage, db = async_storage()

    async def scenario() -> None:
        session = await storage.aget_session(None)
        session["a"] = 1
        header = await storage.acommit_session(session)
        again = await storage.aget_session(header.split(";")[0])
        assert again["a"] == 1
        await storage.adestroy_session(again)
        assert db == {}

    asyncio.run(scenario())


def test_async_callbacks_refuse_the_sync_door_clearly() -> None:
    storage, _ = async_storage()
    session = storage.get_session(None)
    session["a"] = 1
    with pytest.raises(ConfigurationError, match="async"):
        storage.commit_session(session)


def test_bad_ids_from_create_data_are_refused() -> None:
    storage = create_session_storage(
        cookie=create_cookie("s", secrets=["k"]),
        create_data=lambda data, expires: 42,  # type: ignore[arg-type,return-value]
        read_data=lambda id: None,
        update_data=lambda id, data, expires: None,
        delete_data=lambda id: None,
    )
    session = storage.get_session(None)
    session["a"] = 1
    with pytest.raises(SessionStoreError):
        storage.commit_session(session)


def test_custom_id_validation() -> None:
    seen: list[str] = []
    storage = create_session_storage(
        cookie=create_cookie("s", secrets=["k"]),
        create_data=lambda data, expires: "x",
        read_data=lambda id: seen.append(id),  # type: ignore[func-returns-value]
        update_data=lambda id, data, expires: None,
        delete_data=lambda id: None,
        is_valid_id=lambda value: value == "good",
    )
    storage.get_session(storage.cookie.serialize("bad").split(";")[0])
    storage.get_session(storage.cookie.serialize("good").split(";")[0])
    assert seen == ["good"]


def dict_callbacks() -> dict[str, Any]:
    db: dict[str, Any] = {}

    def create_data(data: Any, expires: Any) -> str:
        id = generate_id()
        db[id] = dict(data)
        return id

    return {
        "create_data": create_data,
        "read_data": db.get,
        "update_data": lambda id, data, expires: db.__setitem__(id, dict(data)),
        "delete_data": lambda id: db.pop(id, None),
    }


def test_the_shared_options_and_the_older_default_ttl_are_taken() -> None:
    cookie = create_cookie("s", secrets=["k"], max_age=3600)
    storage = create_session_storage(cookie=cookie, ttl=60, rolling=False, **dict_callbacks())
    assert (storage.store.default_ttl, storage.store.explicit_ttl, storage.rolling) == (60.0, True, False)
    storage = create_session_storage(cookie=cookie, default_ttl=30, **dict_callbacks())
    assert (storage.store.default_ttl, storage.store.explicit_ttl) == (30.0, True)
    storage = create_session_storage(cookie=cookie, default_ttl=None, **dict_callbacks())
    assert (storage.store.default_ttl, storage.store.explicit_ttl) == (None, False)


def test_storage_key_secret_and_unknown_keywords_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="create_data issues the id"):
        create_session_storage(storage_key_secret="x", **dict_callbacks())
    with pytest.raises(TypeError, match="unexpected keyword argument 'roling'"):
        create_session_storage(roling=False, **dict_callbacks())  # type: ignore[call-arg]
