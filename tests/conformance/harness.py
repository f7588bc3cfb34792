"""The conformance suite's tools: a browser cookie jar, a fake clock, and the two doors.

A test is written once against a :class:`Door`; it runs through the sync door
(``get_session``/``commit_session``) and through the async door (``aget_session``/...).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from websession import Session
from websession.cookie import Cookie

Storage = Any  # SessionStorage or CookieSessionStorage
Mutate = Callable[[Session], None]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Browser:
    """Keeps one cookie the way a browser does: set by Set-Cookie, sent in Cookie."""

    name: str
    value: str | None = None
    history: list[str | None] = field(default_factory=list)

    @property
    def header(self) -> str | None:
        return None if self.value is None else f"{self.name}={self.value}"

    def receive(self, set_cookie: str | None) -> None:
        self.history.append(set_cookie)
        if set_cookie is None:
            return
        pair, _, attributes = set_cookie.partition(";")
        name, _, value = pair.partition("=")
        assert name == self.name, set_cookie
        expired = "Expires=Thu, 01 Jan 1970" in attributes or "Max-Age=0" in attributes
        self.value = None if expired or value == "" else value


class Door:
    """One way into a storage: sync or async. Tests call these, never the storage."""

    name = "door"

    def get(self, storage: Storage, header: str | None) -> Session:
        raise NotImplementedError

    def commit(self, storage: Storage, session: Session, **overrides: Any) -> str | None:
        raise NotImplementedError

    def destroy(self, storage: Storage, session: Session) -> str:
        raise NotImplementedError

    def concurrently(self, storage: Storage, header: str | None, mutations: list[Mutate]) -> list[str | None]:
        """Run one request per mutation on the same cookie, all reading before any commits."""
        raise NotImplementedError

    def close(self, storage: Storage) -> None:
        raise NotImplementedError

    def call(self, storage: Storage, verb: str, *args: Any, **kwargs: Any) -> Any:
        """Call a storage verb through this door: ``verb`` or its ``a``-prefixed twin."""
        raise NotImplementedError

    # -- conveniences built on the three verbs --------------------------------------------

    def request(self, storage: Storage, browser: Browser, mutate: Mutate | None = None) -> Session:
        """One request: load the session from the browser's cookie, change it, commit."""
        session = self.get(storage, browser.header)
        if mutate is not None:
            mutate(session)
        browser.receive(self.commit(storage, session))
        return session


class SyncDoor(Door):
    name = "sync"

    def get(self, storage: Storage, header: str | None) -> Session:
        return storage.get_session(header)

    def commit(self, storage: Storage, session: Session, **overrides: Any) -> str | None:
        return storage.commit_session(session, **overrides)

    def destroy(self, storage: Storage, session: Session) -> str:
        return storage.destroy_session(session)

    def concurrently(self, storage: Storage, header: str | None, mutations: list[Mutate]) -> list[str | None]:
        barrier = threading.Barrier(len(mutations))
        results: list[Any] = [None] * len(mutations)

        def one(index: int, mutate: Mutate) -> None:
            try:
                session = storage.get_session(header)
                barrier.wait(timeout=30)
                mutate(session)
                results[index] = storage.commit_session(session)
            except BaseException as exc:  # surfaced below
                results[index] = exc

        threads = [threading.Thread(target=one, args=(i, m)) for i, m in enumerate(mutations)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    def close(self, storage: Storage) -> None:
        storage.close()

    def call(self, storage: Storage, verb: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(storage, verb)(*args, **kwargs)


class AsyncDoor(Door):
    name = "async"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    def get(self, storage: Storage, header: str | None) -> Session:
        return self.run(storage.aget_session(header))

    def commit(self, storage: Storage, session: Session, **overrides: Any) -> str | None:
        return self.run(storage.acommit_session(session, **overrides))

    def destroy(self, storage: Storage, session: Session) -> str:
        return self.run(storage.adestroy_session(session))

    def concurrently(self, storage: Storage, header: str | None, mutations: list[Mutate]) -> list[str | None]:
        async def all_requests() -> list[str | None]:
            loaded = 0
            everyone_loaded = asyncio.Event()

            async def one(mutate: Mutate) -> str | None:
                nonlocal loaded
                session = await storage.aget_session(header)
                loaded += 1
                if loaded == len(mutations):
                    everyone_loaded.set()
                await everyone_loaded.wait()
                mutate(session)
                return await storage.acommit_session(session)

            return list(await asyncio.gather(*(one(m) for m in mutations)))

        return self.run(all_requests())

    def call(self, storage: Storage, verb: str, *args: Any, **kwargs: Any) -> Any:
        return self.run(getattr(storage, f"a{verb}")(*args, **kwargs))

    def close(self, storage: Storage) -> None:
        try:
            self.run(storage.aclose())
        finally:
            self.loop.close()


@dataclass
class Options:
    """What a test asks of the storage it gets."""

    cookie: Cookie
    clock: Callable[[], datetime]
    rolling: bool = True
    save_uninitialized: bool = False
    #: An explicit record lifetime (the factory's ``ttl=``, or ``default_ttl=`` where it is
    #: called that); None: not given, so the cookie's lifetime decides.
    ttl: float | None = None
