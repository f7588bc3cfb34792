"""The options every storage factory shares (websession.options)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from websession import StorageOptions, create_cookie, create_memory_session_storage
from websession.options import check_options, resolved_ttl, store_arguments, url_options
from websession.stores.base import UNSET

COOKIE = create_cookie("s", secrets=["k"], max_age=3600)


def test_one_options_dict_configures_the_storage_and_its_store() -> None:
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    shared = StorageOptions(
        rolling=False,
        save_uninitialized=True,
        absolute_timeout=600,
        storage_key_secret="k",
        clock=lambda: moment,
        ttl=120,
        codec="tagged",
    )
    storage = create_memory_session_storage(cookie=COOKIE, **shared)
    assert (storage.rolling, storage.save_uninitialized) == (False, True)
    assert storage.absolute_timeout == timedelta(seconds=600)
    assert storage.store.default_ttl == 120.0 and storage.store.explicit_ttl
    assert storage.store.hashes_ids and storage.store.clock() == moment
    assert type(storage.codec).__name__ == "TaggedJSON"
    session = storage.get_session(None)
    session["when"] = moment
    header = storage.commit_session(session)
    assert storage.get_session(header)["when"] == moment
    # The explicit ttl, not the cookie's hour, is the record's lifetime.
    (record,) = (record for _, record in storage.store.scan())
    assert record.expires == moment + timedelta(seconds=120)


def test_the_defaults_are_the_storage_defaults() -> None:
    storage = create_memory_session_storage(cookie=COOKIE)
    assert (storage.rolling, storage.save_uninitialized, storage.absolute_timeout) == (True, False, None)
    assert storage.store.default_ttl is None and not storage.store.explicit_ttl
    assert not storage.store.hashes_ids


def test_default_ttl_is_the_older_spelling_of_ttl() -> None:
    storage = create_memory_session_storage(cookie=COOKIE, default_ttl=30)
    assert storage.store.default_ttl == 30.0 and storage.store.explicit_ttl
    assert resolved_ttl({"default_ttl": None}, 604800) == (604800, False)


def test_an_unknown_keyword_is_a_type_error_naming_the_factory() -> None:
    with pytest.raises(TypeError, match=r"create_memory_session_storage\(\) .* 'roling'"):
        create_memory_session_storage(cookie=COOKIE, roling=False)  # type: ignore[call-arg]


def test_ttl_and_default_ttl_together_are_refused() -> None:
    with pytest.raises(TypeError, match="not both"):
        check_options("f", {"ttl": 1, "default_ttl": 2})


@pytest.mark.parametrize(
    ("options", "fallback", "expected"),
    [
        ({}, None, (None, False)),
        ({}, 604800, (604800, False)),
        ({"ttl": None}, 604800, (None, False)),
        ({"ttl": UNSET}, 10, (10, False)),
        ({"ttl": 5}, 604800, (5.0, True)),
        ({"default_ttl": 5}, None, (5.0, True)),
    ],
)
def test_resolved_ttl(
    options: StorageOptions, fallback: float | None, expected: tuple[float | None, bool]
) -> None:
    assert resolved_ttl(options, fallback) == expected


def test_store_arguments_take_only_what_a_store_takes() -> None:
    arguments = store_arguments({"ttl": 9, "rolling": False, "storage_key_secret": b"s"}, 100)
    assert set(arguments) == {"default_ttl", "clock", "storage_key_secret"}
    assert (arguments["default_ttl"], arguments["storage_key_secret"]) == (9.0, b"s")


def test_url_options_pop_the_shared_options_and_leave_the_rest() -> None:
    options = {
        "rolling": "0",
        "save_uninitialized": "yes",
        "ttl": "none",
        "absolute_timeout": "86400",
        "prefix": "app:",
    }
    assert url_options(options) == {
        "rolling": False,
        "save_uninitialized": True,
        "ttl": None,
        "absolute_timeout": 86400.0,
    }
    assert options == {"prefix": "app:"}
    assert url_options({"rolling": True, "ttl": 7}) == {"rolling": True, "ttl": 7}


def test_a_malformed_url_option_is_an_error() -> None:
    with pytest.raises(ValueError):
        url_options({"ttl": "soon"})


def test_a_keyword_ttl_of_none_is_not_given_and_the_store_default_stands() -> None:
    from websession import open_store

    assert "ttl" not in url_options({"ttl": None})
    storage = open_store("memory://", secrets=["k"], ttl=None)
    assert (storage.store.default_ttl, storage.store.explicit_ttl) == (None, False)
    storage = open_store("memory://?ttl=none", secrets=["k"])
    assert (storage.store.default_ttl, storage.store.explicit_ttl) == (None, False)


def test_a_keyword_ttl_of_none_keeps_the_seven_day_default_of_the_ttl_stores(redis_url: str) -> None:
    from websession import open_store

    storage = open_store(redis_url, secrets=["k"], ttl=None)
    assert (storage.store.default_ttl, storage.store.explicit_ttl) == (604800, False)


def test_absolute_timeout_none_means_none() -> None:
    assert url_options({"absolute_timeout": None}) == {"absolute_timeout": None}
    assert url_options({"absolute_timeout": "none"}) == {"absolute_timeout": None}


# -- every factory takes the same options -------------------------------------------------------

FACTORIES: dict[str, tuple[str, dict[str, object]]] = {
    "memory": ("websession.stores.memory:create_memory_session_storage", {}),
    "file": ("websession.stores.file:create_file_session_storage", {"dir": "{tmp}/files"}),
    "sqlite": ("websession.stores.sqlite:create_sqlite_session_storage", {"path": "{tmp}/s.db"}),
    "postgres": (
        "websession.stores.postgres:create_postgres_session_storage",
        {"dsn": "postgresql://localhost/postgres"},
    ),
    "redis": ("websession.stores.redis:create_redis_session_storage", {"url": "redis://localhost:6379/0"}),
    "upstash": (
        "websession.stores.upstash:create_upstash_session_storage",
        {"url": "http://localhost:1", "token": "t"},
    ),
    "memcache": ("websession.stores.memcache:create_memcache_session_storage", {"servers": ["localhost:1"]}),
    "dynamodb": (
        "websession.stores.dynamodb:create_dynamodb_session_storage",
        {"table": "t", "region": "eu-west-1"},
    ),
    "workers_kv": (
        "websession.stores.workers_kv:create_workers_kv_session_storage",
        {"account_id": "a", "namespace_id": "n", "api_token": "t"},
    ),
    "custom": (
        "websession.stores.custom:create_session_storage",
        {
            "create_data": lambda data, expires: "0" * 40,
            "read_data": lambda id: None,
            "update_data": lambda id, data, expires: None,
            "delete_data": lambda id: None,
        },
    ),
}


def _factory(name: str, tmp_path: object) -> tuple[object, dict[str, object], str]:
    import importlib

    target, arguments = FACTORIES[name]
    module, _, function = target.partition(":")
    own = {
        key: value.format(tmp=tmp_path) if isinstance(value, str) else value
        for key, value in arguments.items()
    }
    return getattr(importlib.import_module(module), function), own, function


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_factory_takes_the_shared_options(name: str, tmp_path: object) -> None:
    factory, own, _ = _factory(name, tmp_path)
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    shared = StorageOptions(
        rolling=False,
        save_uninitialized=True,
        absolute_timeout=600,
        ttl=120,
        codec="tagged",
        clock=lambda: moment,
    )
    if name != "custom":  # custom storage's ids come from create_data: nothing to hash
        shared["storage_key_secret"] = "k"
    storage = factory(cookie=COOKIE, **own, **shared)  # type: ignore[operator]
    try:
        assert (storage.rolling, storage.save_uninitialized) == (False, True)
        assert storage.absolute_timeout == timedelta(seconds=600)
        assert type(storage.codec).__name__ == "TaggedJSON"
        store = storage.store
        assert (store.default_ttl, store.explicit_ttl, store.clock()) == (120.0, True, moment)
        assert store.hashes_ids == (name != "custom")
        legacy = factory(cookie=COOKIE, **own, default_ttl=30)  # type: ignore[operator]
        assert (legacy.store.default_ttl, legacy.store.explicit_ttl) == (30.0, True)
        legacy.close()
    finally:
        storage.close()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_every_factory_refuses_an_unknown_option_by_name(name: str, tmp_path: object) -> None:
    factory, own, function = _factory(name, tmp_path)
    with pytest.raises(TypeError, match=rf"{function}\(\) .* 'roling'"):
        factory(cookie=COOKIE, **own, roling=False)  # type: ignore[operator]
    with pytest.raises(TypeError, match="not both"):
        factory(cookie=COOKIE, **own, ttl=1, default_ttl=2)  # type: ignore[operator]


def test_the_cookie_factory_takes_the_shared_options_it_can_keep() -> None:
    from websession import create_cookie_session_storage

    storage = create_cookie_session_storage(
        cookie=COOKIE, encryption_keys=["k" * 32], rolling=False, absolute_timeout=600, ttl=120
    )
    assert (storage.rolling, storage.absolute_timeout) == (False, timedelta(seconds=600))
    with pytest.raises(TypeError, match=r"create_cookie_session_storage\(\) .* 'roling'"):
        create_cookie_session_storage(cookie=COOKIE, roling=False)  # type: ignore[call-arg]
