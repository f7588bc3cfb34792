"""The Redis store keeps connections checked out of redis-py's pool between operations (see
``_Held`` in websession.stores.redis). These tests make sure that never mixes up requests: a
request interrupted while its reply is on the way, a hung server, many requests at once on one
event loop or in threads, and clients handed in by the application."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis.asyncio

from tests.servers.redis import RedisServer
from websession import StoreUnavailableError, create_cookie, create_redis_session_storage


def make(url: str | None = None, **options: Any) -> Any:
    cookie = create_cookie("__session", secrets=["s3cret"], max_age=3600)
    return create_redis_session_storage(cookie=cookie, url=url, prefix="held:", **options)


def pair(set_cookie: str | None) -> str:
    assert set_cookie is not None
    return set_cookie.split(";")[0]


@contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    """The server stops answering (SIGSTOP) until the block ends."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


async def new_session(storage: Any, **data: Any) -> str:
    session = await storage.aget_session(None)
    session.update(data)
    return pair(await storage.acommit_session(session))


def test_a_request_cancelled_mid_reply_never_hands_its_reply_to_the_next(private_redis: RedisServer) -> None:
    storage = make(private_redis.url)

    async def main() -> None:
        alice = await new_session(storage, name="alice")
        bob = await new_session(storage, name="bob")
        # The GETEX for alice is sent; its reply comes only after the request was cancelled.
        with frozen(private_redis), pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(storage.aget_session(alice), 0.2)
        for _ in range(3):
            assert (await storage.aget_session(bob))["name"] == "bob"
            assert (await storage.aget_session(alice))["name"] == "alice"
        await storage.aclose()

    asyncio.run(main())


def test_a_store_timeout_drops_the_connection_and_the_next_request_is_right(
    private_redis: RedisServer,
) -> None:
    storage = make(private_redis.url, timeout=0.3)

    async def main() -> None:
        alice = await new_session(storage, name="alice")
        bob = await new_session(storage, name="bob")
        with frozen(private_redis), pytest.raises(StoreUnavailableError):
            await storage.aget_session(alice)
        assert (await storage.aget_session(bob))["name"] == "bob"
        session = await storage.aget_session(alice)
        session["seen"] = True
        await storage.acommit_session(session)
        assert dict(await storage.aget_session(alice)) == {"name": "alice", "seen": True}
        await storage.aclose()

    asyncio.run(main())


def test_a_sync_timeout_drops_the_connection_and_the_next_request_is_right(
    private_redis: RedisServer,
) -> None:
    storage = make(private_redis.url, timeout=0.3)
    headers = {}
    for name in ("alice", "bob"):
        session = storage.get_session(None)
        session["name"] = name
        headers[name] = pair(storage.commit_session(session))
    with frozen(private_redis), pytest.raises(StoreUnavailableError):
        storage.get_session(headers["alice"])
    assert storage.get_session(headers["bob"])["name"] == "bob"
    assert storage.get_session(headers["alice"])["name"] == "alice"
    storage.close()


def test_many_requests_at_once_on_one_loop_each_get_their_own_session(redis_url: str) -> None:
    storage = make(redis_url)

    async def main() -> None:
        headers = [await new_session(storage, n=0, who=i) for i in range(40)]

        async def visit(index: int) -> None:
            for _ in range(5):
                session = await storage.aget_session(headers[index])
                assert session["who"] == index
                session["n"] += 1
                await asyncio.sleep(0)
                await storage.acommit_session(session)

        await asyncio.gather(*(visit(i) for i in range(40)))
        for index, header in enumerate(headers):
            assert dict(await storage.aget_session(header)) == {"n": 5, "who": index}
        for header in headers:
            await storage.adestroy_session(await storage.aget_session(header))
        await storage.aclose()

    asyncio.run(main())


def test_threads_share_the_sync_door_safely(redis_url: str) -> None:
    storage = make(redis_url)
    headers = []
    for index in range(8):
        session = storage.get_session(None)
        session.update(n=0, who=index)
        headers.append(pair(storage.commit_session(session)))
    errors: list[BaseException] = []

    def visit(index: int) -> None:
        try:
            for _ in range(50):
                session = storage.get_session(headers[index])
                assert session["who"] == index
                session["n"] += 1
                storage.commit_session(session)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [storage.get_session(h)["n"] for h in headers] == [50] * 8
    for header in headers:
        storage.destroy_session(storage.get_session(header))
    storage.close()


def test_a_given_client_keeps_its_own_pool_rules(redis_url: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        storage = make(client=client)
        header = await new_session(storage, a=1)
        assert (await storage.aget_session(header))["a"] == 1
        # Every connection went back to the application's pool: none is held by the store.
        pool: Any = client.connection_pool
        assert not pool._in_use_connections
        await storage.adestroy_session(await storage.aget_session(header))
        await client.aclose()

    asyncio.run(main())


def test_the_callers_own_cancel_stays_a_cancel_and_no_deadline_fires_later(
    private_redis: RedisServer,
) -> None:
    storage = make(private_redis.url, timeout=0.3)

    async def main() -> None:
        alice = await new_session(storage, name="alice")
        with frozen(private_redis):
            task = asyncio.create_task(storage.aget_session(alice))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.6)  # past the deadline the cancelled read would have had
        # A later, slower-than-nothing request is not hit by a stale deadline.
        session = await storage.aget_session(alice)
        await asyncio.sleep(0.4)
        session["more"] = 1
        await storage.acommit_session(session)
        assert dict(await storage.aget_session(alice)) == {"name": "alice", "more": 1}
        await storage.aclose()

    asyncio.run(main())


def held_of(storage: Any) -> Any:
    lanes = list(storage.store._lanes.values())
    assert len(lanes) == 1 and lanes[0].held is not None
    return lanes[0].held


def test_overload_with_timeouts_and_cancellations_loses_no_connection(redis_url: str) -> None:
    """300 requests on 4 connections with a short timeout, a third of them cancelled at random
    points: afterwards every connection is back, no waiter is left, and requests succeed."""
    import random

    storage = make(redis_url, max_connections=4, timeout=0.02)
    rng = random.Random(7)

    async def scenario() -> None:
        header = await new_session(storage, n=1)
        for _ in range(3):
            tasks = [asyncio.ensure_future(storage.aget_session(header)) for _ in range(300)]
            for task in rng.sample(tasks, 100):
                asyncio.get_running_loop().call_later(rng.random() * 0.05, task.cancel)
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.1)  # let the deadline timer run out
        held = held_of(storage)
        assert held.opened <= 4
        assert len(held.idle) == held.opened  # every connection is back
        assert len(held.waiters) == 0  # no stale waiter is kept
        for _ in range(20):
            assert (await storage.aget_session(header))["n"] == 1
        await storage.aclose()

    asyncio.run(scenario())


def test_a_waiter_handed_a_connection_as_it_is_cancelled_passes_it_on(redis_url: str) -> None:
    storage = make(redis_url, max_connections=1, timeout=5)

    async def scenario() -> None:
        header = await new_session(storage, n=1)
        held = held_of(storage)
        conn = await held.atake()  # the only connection, taken
        waiter = asyncio.ensure_future(held.atake())
        await asyncio.sleep(0)
        held.agive(conn)  # handed to the waiter ...
        waiter.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert held.idle == [conn] and held.opened == 1 and not held.waiters
        assert (await storage.aget_session(header))["n"] == 1
        await storage.aclose()

    asyncio.run(scenario())


def test_sync_overload_with_timeouts_loses_no_connection(redis_url: str) -> None:
    storage = make(redis_url, max_connections=2, timeout=0.02)
    session = storage.get_session(None)
    session["n"] = 1
    header = pair(storage.commit_session(session))
    failures: list[BaseException] = []

    def hammer() -> None:
        for _ in range(30):
            try:
                storage.get_session(header)
            except StoreUnavailableError as exc:  # waited too long for a connection: a 503
                failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    held = storage.store._sync_held
    assert held is not None and held.opened <= 2
    assert len(held.idle) == held.opened  # every connection is back
    assert all(storage.get_session(header)["n"] == 1 for _ in range(20))
    storage.close()
