"""Shared tools of the security suite: storage builders that clean up, and a guard that
checks every id a store receives."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from websession import create_cookie

from .backends import Backend

COOKIE_NAME = "__session"
SECRET = "security-suite-secret"


def make_cookie(secrets: list[str] | None = None, **options: Any) -> Any:
    return create_cookie(COOKIE_NAME, secrets=[SECRET] if secrets is None else secrets, **options)


def request_header(set_cookie: str | None) -> str:
    """The Cookie request header a browser sends back for a Set-Cookie value."""
    assert set_cookie is not None
    return set_cookie.split(";")[0]


class IdGuard:
    """Wraps a store's id-taking methods (both doors) and records every id they receive.

    ``bad`` lists ids that reached the store although ``store.is_valid_id`` refuses them.
    """

    METHODS = ("read", "update", "delete", "aread", "aupdate", "adelete")

    def __init__(self, store: Any) -> None:
        self.store = store
        self.seen: list[Any] = []
        self.bad: list[Any] = []
        for name in self.METHODS:
            self._wrap(name)

    def _check(self, id: Any) -> None:
        self.seen.append(id)
        if not self.store.is_valid_id(id):
            self.bad.append(id)

    def _wrap(self, name: str) -> None:
        original = getattr(self.store, name)
        check = self._check
        if asyncio.iscoroutinefunction(original):

            @functools.wraps(original)
            async def async_wrapper(id: Any, *args: Any, **kwargs: Any) -> Any:
                check(id)
                return await original(id, *args, **kwargs)

            setattr(self.store, name, async_wrapper)
        else:

            @functools.wraps(original)
            def wrapper(id: Any, *args: Any, **kwargs: Any) -> Any:
                check(id)
                return original(id, *args, **kwargs)

            setattr(self.store, name, wrapper)


class Runner:
    """One event loop for all of a test's async calls: async clients and pools belong to the
    loop that opened them, so they are used and closed in that one."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(coroutine)


@pytest.fixture
def arun() -> Iterator[Runner]:
    runner = Runner()
    yield runner
    if runner.loop is not None:
        runner.loop.close()


@pytest.fixture
def build(request: pytest.FixtureRequest, arun: Runner) -> Iterator[Callable[..., Any]]:
    """``build(backend, **factory_options)``: a storage on that backend, closed afterwards,
    through the async door when the test used it (``arun``)."""
    made: list[Any] = []

    def make(backend: Backend, **kwargs: Any) -> Any:
        kwargs.setdefault("cookie", make_cookie())
        storage = backend.make(request, **kwargs)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        if arun.loop is not None:
            arun.run(storage.aclose())
        else:
            storage.close()
