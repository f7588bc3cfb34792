from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from websession import create_cookie

from .cases import StoreCase, all_cases
from .harness import AsyncDoor, Browser, Door, FakeClock, Options, SyncDoor

COOKIE_NAME = "__session"
SECRETS = ["new-secret", "old-secret"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = all_cases()
        metafunc.parametrize(
            "case", [pytest.param(c, id=c.name, marks=c.marks) for c in cases], indirect=True
        )


@pytest.fixture
def case(request: pytest.FixtureRequest) -> StoreCase:
    return request.param


@pytest.fixture(params=["sync", "async"])
def door(request: pytest.FixtureRequest) -> Door:
    return SyncDoor() if request.param == "sync" else AsyncDoor()


@pytest.fixture
def clock(case: StoreCase) -> Callable[[], Any]:
    return FakeClock() if case.fake_clock else __import__("websession").stores.base.utcnow


@pytest.fixture
def make_storage(
    request: pytest.FixtureRequest, case: StoreCase, door: Door, clock: Any
) -> Iterator[Callable[..., Any]]:
    """Build storages for the case under test; all of them are closed afterwards."""
    made: list[Any] = []

    def make(
        *,
        secrets: list[str] = SECRETS[:1],
        max_age: float | None = 3600,
        rolling: bool = True,
        save_uninitialized: bool = False,
        ttl: float | None = None,
    ) -> Any:
        cookie = create_cookie(COOKIE_NAME, secrets=secrets, max_age=max_age)
        storage = case.make(request, Options(cookie, clock, rolling, save_uninitialized, ttl))
        made.append(storage)
        return storage

    yield make
    for index, storage in enumerate(made):
        if isinstance(door, AsyncDoor) and index < len(made) - 1:
            door.run(storage.aclose())
        else:
            door.close(storage)


@pytest.fixture
def storage(make_storage: Callable[..., Any]) -> Any:
    return make_storage()


@pytest.fixture
def browser() -> Browser:
    return Browser(COOKIE_NAME)
