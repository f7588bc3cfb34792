"""Django's own ``tests/sessions_tests`` run against the websession engine.

``SessionTestsMixin`` (the backend contract every Django backend passes) and
``SessionMiddlewareTests`` come from the Django sdist that constraints.txt pins
(tests/peers.py), unchanged but for one import: the module that defines Django's custom
*database* session model is not loaded, since no websession store is a Django model. The
mixin runs on four stores: memory, SQLite, file and Redis. Tests that assert a detail of
Django's own backends rather than the contract are excluded by name, each with its reason.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Any

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.django_project.settings")

import django

django.setup()

from django.test import SimpleTestCase, override_settings  # noqa: E402

from tests.peers import patched_module, peer_source  # noqa: E402
from websession.integrations.django import SessionStore  # noqa: E402

_suite = patched_module(
    "django_sessions_suite",
    peer_source("django") / "tests" / "sessions_tests" / "tests.py",
    {"from .models import SessionStore as CustomDatabaseSession": "CustomDatabaseSession = None"},
)
SessionTestsMixin: Any = _suite["SessionTestsMixin"]

#: Mixin tests that check a detail of Django's own backends, not the backend contract.
EXCLUDED = {
    # Django's backends encode with its signing.dumps; ours keeps JSON in the store and has
    # no encode()/decode() of its own to feed a hand-made or corrupt payload through.
    "test_decode": "Django's session payload encoding (SessionBase.encode/decode)",
    "test_decode_failure_logged_to_security": "Django's session payload encoding",
    "test_decode_serializer_exception": "Django's session payload encoding",
    # A websession key is the signed id; an arbitrary string is refused before any store sees
    # it, by design (docs/security.md), where Django accepts any key of 8 characters or more.
    "test_session_key_valid_string_saved": "accepts an arbitrary unsigned 8-character key",
    # These two read or write through Django's database backend and its Session model.
    "test_session_update_error_redirect": "uses Django's DatabaseSession backend explicitly",
    "test_empty_session_saved": "reads the record through Django's Session model",
}

_REDIS = f"websession-test:django-suite:{secrets.token_hex(4)}:"
_TMP = tempfile.mkdtemp(prefix="websession-django-suite-")
STORES = {
    "memory": "memory://",
    "sqlite": f"sqlite:///{_TMP}/sessions.db",
    "file": f"file://{_TMP}/files",
    "redis": f"redis://127.0.0.1:6379/0?prefix={_REDIS}",
}


def _excluding(cls: type) -> type:
    for name in EXCLUDED:
        if hasattr(cls, name):
            setattr(cls, name, pytest.mark.skip(reason=f"excluded: {EXCLUDED[name]}")(getattr(cls, name)))
    return cls


def _suite_for(store: str) -> type:
    @_excluding
    @override_settings(WEBSESSION_STORAGE=STORES[store])
    class Suite(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
        backend = SessionStore

    Suite.__name__ = Suite.__qualname__ = f"TestDjangoSuiteOn{store.title()}"
    return Suite


TestDjangoSuiteOnMemory = _suite_for("memory")
TestDjangoSuiteOnSqlite = _suite_for("sqlite")
TestDjangoSuiteOnFile = _suite_for("file")
TestDjangoSuiteOnRedis = _suite_for("redis")


@_excluding
class TestDjangoMiddlewareSuite(_suite["SessionMiddlewareTests"]):  # type: ignore[misc]
    """Django's SessionMiddlewareTests with SESSION_ENGINE set to ours (the project's)."""


@pytest.fixture(scope="module", autouse=True)
def _forget_redis_keys() -> Any:
    yield
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = list(client.scan_iter(match=f"{_REDIS}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
