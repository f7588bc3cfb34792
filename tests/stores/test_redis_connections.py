"""The Redis store keeps connections checked out of redis-py's pool between operations (see
``Held`` in websession.stores.redis.connections). These tests make sure that never mixes up requests: a
request interrupted while its reply is on the way, a hung server, many requests at once on one
event loop or in threads, and clients handed in by the application."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis.asyncio

from tests.servers.redis import RedisServer
from tests.timing import Stopwatch
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


def on_send(conn: Any, then: Callable[[], None]) -> None:
    """Call ``then()`` as soon as the next command has gone out on ``conn`` (into the socket:
    a frozen server has not read it yet), with no await in between."""
    send = conn.send_packed_command

    async def sending(*args: Any, **kwargs: Any) -> Any:
        try:
            return await send(*args, **kwargs)
        finally:
            conn.send_packed_command = send
            then()

    conn.send_packed_command = sending


async def until(condition: Callable[[], bool], what: str, within: float = 30) -> None:
    """Wait for ``condition``, however loaded the machine; fail after ``within`` seconds."""
    watch = Stopwatch()
    while not condition():
        if watch.elapsed > within:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.005)


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
    timeout = 0.3
    storage = make(private_redis.url, timeout=timeout)

    async def main() -> None:
        alice = await new_session(storage, name="alice")
        (conn,) = async_held(storage).idle
        with frozen(private_redis):
            watch = Stopwatch()
            task = asyncio.create_task(storage.aget_session(alice))
            cancelled_at: list[float] = []
            # The caller cancels once the GETEX is out, its reply held up in the frozen server.
            on_send(conn, lambda: (task.cancel(), cancelled_at.append(watch.elapsed)))
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
            # Cancelled within the store's timeout, the request ends as the caller's cancel; a
            # machine that stalled past the timeout first may have had the deadline end it.
            assert cancelled_at, outcome
            if cancelled_at[0] < timeout or not isinstance(outcome, StoreUnavailableError):
                assert isinstance(outcome, asyncio.CancelledError), outcome
            await asyncio.sleep(2 * timeout)  # past the deadline the cancelled read would have had
        # A later, slower-than-nothing request is not hit by a stale deadline.
        session = await storage.aget_session(alice)
        await asyncio.sleep(0.4)
        session["more"] = 1
        await storage.acommit_session(session)
        assert dict(await storage.aget_session(alice)) == {"name": "alice", "more": 1}
        await storage.aclose()

    asyncio.run(main())


# -- overload, cancellations and timeouts never lose a held connection (issue 11, item 4) ----


def async_held(storage: Any) -> Any:
    (lane,) = storage.store._lanes.values()
    return lane.held


def assert_all_back(held: Any, limit: int) -> None:
    """Nothing runs: every connection opened is idle again, and nobody waits."""
    assert 1 <= held.opened <= limit
    assert len(held.idle) == held.opened
    assert len(set(map(id, held.idle))) == held.opened
    assert not held.waiters
    assert len(held.pool._in_use_connections) == held.opened


def test_a_waiter_cancelled_just_as_it_is_handed_a_connection_passes_it_on(redis_url: str) -> None:
    storage = make(redis_url, max_connections=1, timeout=2)

    async def main() -> None:
        alice = await new_session(storage, name="alice")

        async def first() -> None:
            await storage.aget_session(alice)
            # The read just gave the one connection to `second`, which has not run yet.
            second.cancel()

        one = asyncio.create_task(first())
        second = asyncio.create_task(storage.aget_session(alice))
        await one
        with pytest.raises(asyncio.CancelledError):
            await second
        assert_all_back(async_held(storage), 1)
        assert (await storage.aget_session(alice))["name"] == "alice"
        await storage.adestroy_session(await storage.aget_session(alice))
        await storage.aclose()

    asyncio.run(main())


def test_an_overload_with_timeouts_and_cancels_gives_every_connection_back(
    private_redis: RedisServer,
) -> None:
    import random

    storage = make(private_redis.url, max_connections=4, timeout=0.5)
    rng = random.Random(11)

    async def main() -> None:
        headers = [await new_session(storage, who=i) for i in range(20)]

        async def visit(index: int) -> None:
            header = headers[index % len(headers)]
            for _ in range(20):
                roll = rng.random()
                try:
                    if roll < 0.4:  # the caller's own deadline, anywhere in the operation
                        await asyncio.wait_for(storage.aget_session(header), rng.uniform(0, 0.01))
                    elif roll < 0.7:  # a cancel at a random point
                        task = asyncio.create_task(storage.aget_session(header))
                        await asyncio.sleep(rng.uniform(0, 0.005))
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                    else:
                        session = await storage.aget_session(header)
                        assert session["who"] == index % len(headers)
                        session["n"] = roll
                        await storage.acommit_session(session)
                except (asyncio.TimeoutError, StoreUnavailableError):
                    pass

        async def freeze_once() -> None:
            # A hang in the middle of the run: the store's own timeouts end what is in flight.
            await asyncio.sleep(0.05)
            with frozen(private_redis):
                await asyncio.sleep(0.8)

        await asyncio.gather(freeze_once(), *(visit(i) for i in range(300)))
        assert_all_back(async_held(storage), 4)
        # Reads and writes succeed again, one at a time and many at once.
        for index, header in enumerate(headers):
            session = await storage.aget_session(header)
            assert session["who"] == index
            session["after"] = True
            await storage.acommit_session(session)
        sessions = await asyncio.gather(*(storage.aget_session(h) for h in headers))
        assert [(s["who"], s["after"]) for s in sessions] == [(i, True) for i in range(20)]
        assert_all_back(async_held(storage), 4)
        await storage.aclose()

    asyncio.run(main())


def test_a_request_cancelled_after_sending_leaves_no_reply_for_the_next_on_its_connection(
    private_redis: RedisServer,
) -> None:
    storage = make(private_redis.url, max_connections=1, timeout=2)

    async def main() -> None:
        alice = await new_session(storage, name="alice")
        bob = await new_session(storage, name="bob")
        held = async_held(storage)
        (conn,) = held.idle
        with frozen(private_redis):
            task = asyncio.create_task(storage.aget_session(alice))
            # Cancelled once the GETEX is out: its reply waits in the frozen server.
            on_send(conn, task.cancel)
            with pytest.raises(asyncio.CancelledError):
                await task
        # Alice's reply is on its way to a request that is gone: wait until it has arrived on
        # the connection, unless redis-py closed the socket when the read was cancelled.
        await until(
            lambda: conn._reader is None or len(conn._reader._buffer) > 0,
            "the cancelled GETEX's reply arrives, or its socket is closed",
        )
        assert held.opened == 1  # bob's request goes out on that very connection
        for _ in range(3):
            assert dict(await storage.aget_session(bob)) == {"name": "bob"}
            assert dict(await storage.aget_session(alice)) == {"name": "alice"}
        assert_all_back(held, 1)
        await storage.aclose()

    asyncio.run(main())


def test_a_server_killed_mid_request_costs_no_connection(private_redis: RedisServer) -> None:
    storage = make(private_redis.url, max_connections=2, timeout=1)

    async def main() -> None:
        await new_session(storage, name="before")
        assert private_redis.process is not None
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        reads = [asyncio.create_task(new_session(storage, name=str(i))) for i in range(6)]
        await asyncio.sleep(0.2)
        private_redis.stop()  # SIGKILL with commands in flight and requests waiting
        for outcome in await asyncio.gather(*reads, return_exceptions=True):
            assert isinstance(outcome, StoreUnavailableError)
        private_redis.start()
        header = await new_session(storage, name="after")
        assert dict(await storage.aget_session(header)) == {"name": "after"}
        assert_all_back(async_held(storage), 2)
        await storage.aclose()

    asyncio.run(main())


def test_threads_that_time_out_give_every_connection_back(private_redis: RedisServer) -> None:
    storage = make(private_redis.url, max_connections=2, timeout=0.3)
    headers = []
    for index in range(4):
        session = storage.get_session(None)
        session["who"] = index
        headers.append(pair(storage.commit_session(session)))
    failures: list[BaseException] = []

    def visit(index: int) -> None:
        for _ in range(20):
            try:
                assert storage.get_session(headers[index % 4])["who"] == index % 4
            except StoreUnavailableError:
                pass  # a timeout in a read, or while waiting for a connection
            except BaseException as exc:  # reported below, in the test's thread
                failures.append(exc)

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(12)]
    with frozen(private_redis):
        for thread in threads:
            thread.start()
        threading.Event().wait(0.5)
    for thread in threads:
        thread.join()
    assert failures == []
    held = storage.store._sync_held
    assert 1 <= held.opened <= 2 and len(held.idle) == held.opened
    for index, header in enumerate(headers):
        assert storage.get_session(header)["who"] == index
    storage.close()


# -- the sync door: what could cost a slot before the fix (commit a65f644) -------------------
#
# A sync operation that times out cannot lose its connection by the timeout alone: the socket
# error ends the command and the give-back runs in a ``finally`` (redis-py's disconnect swallows
# socket errors), so test_threads_that_time_out_give_every_connection_back guards a property
# that held before the fix too. What could cost a slot was work in that ``finally`` before the
# give-back (dropping the connection: socket calls and redis-py's hooks, where an interrupt can
# land), and what could strand a waiting thread was a failed connect that woke nobody. The
# tests below drive exactly those; both fail on the code before a65f644.


class Interrupt(BaseException):
    """An exception from outside the operation, as a thread's async exception, a green-thread
    timeout or a Ctrl-C in the main thread is: it can land at any bytecode."""


def sync_storage(url: str, **options: Any) -> tuple[Any, Any]:
    """A storage whose sync client is built but has opened no connection yet, and its held
    connections."""
    storage = make(url, **options)
    storage.store._sync_client()
    held = storage.store._sync_held
    assert held is not None and held.opened == 0
    return storage, held


def sessions(url: str, *names: str) -> list[str]:
    """Cookie headers of new sessions, written through a storage of their own."""
    writer = make(url)
    headers = []
    for name in names:
        session = writer.get_session(None)
        session["name"] = name
        headers.append(pair(writer.commit_session(session)))
    writer.close()
    return headers


def test_a_thread_interrupted_while_its_timed_out_connection_is_dropped_keeps_the_slot(
    private_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = sessions(private_redis.url, "alice", "bob")
    storage, held = sync_storage(private_redis.url, max_connections=1, timeout=0.3)
    assert storage.get_session(alice)["name"] == "alice"
    interrupting = True
    disconnect = redis.connection.AbstractConnection.disconnect

    def interrupted_disconnect(self: Any, *args: Any, **kwargs: Any) -> None:
        disconnect(self, *args, **kwargs)
        if interrupting:  # the interrupt lands as the socket is closed
            raise Interrupt

    # Clients left over by earlier code close their connections from __del__ when the garbage
    # collector finds them: that must not happen while every disconnect raises.
    gc.collect()
    gc.disable()
    try:
        monkeypatch.setattr(redis.connection.AbstractConnection, "disconnect", interrupted_disconnect)
        with frozen(private_redis), pytest.raises((StoreUnavailableError, Interrupt)):
            storage.get_session(alice)  # the read times out: its connection must be dropped
        # Dropping it is interrupted wherever it happens: in that request, or in the next one
        # that gets the connection.
        with pytest.raises((StoreUnavailableError, Interrupt)):
            storage.get_session(bob)
    finally:
        interrupting = False
        gc.enable()
    assert held.opened == 1 and len(held.idle) == 1  # the one slot is back
    for _ in range(3):
        assert dict(storage.get_session(bob)) == {"name": "bob"}
        assert dict(storage.get_session(alice)) == {"name": "alice"}
    assert held.opened == 1 and len(held.idle) == 1
    storage.close()


class WatchedCondition(threading.Condition):
    """A condition that tells when a thread starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()  # still under the lock, which wait() releases next
        return super().wait(timeout)


def test_a_failed_connect_hands_its_slot_to_a_waiting_thread(private_redis: RedisServer) -> None:
    (alice,) = sessions(private_redis.url, "alice")
    # A generous timeout: the waiting thread must get the slot when the connect fails, not
    # give up with "No connection available" when its wait runs out.
    storage, held = sync_storage(private_redis.url, max_connections=1, timeout=30)
    held.free = WatchedCondition()
    connect = held.pool.get_connection
    connecting = threading.Event()
    calls = 0

    def failing_first_connect() -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            return connect()
        # The first request holds the only slot while it connects; the second waits for it.
        connecting.set()
        assert held.free.waiting.wait(30)
        raise redis.exceptions.ConnectionError("Connection refused.")

    held.pool.get_connection = failing_first_connect
    outcomes: dict[str, Any] = {}

    def request(name: str) -> None:
        try:
            outcomes[name] = dict(storage.get_session(alice))
        except BaseException as exc:  # checked below, in the test's thread
            outcomes[name] = exc

    first = threading.Thread(target=request, args=("first",))
    first.start()
    assert connecting.wait(30)
    second = threading.Thread(target=request, args=("second",))
    second.start()
    first.join(60)
    second.join(60)
    assert isinstance(outcomes["first"], StoreUnavailableError)
    assert outcomes["second"] == {"name": "alice"}
    assert calls == 2 and held.opened == 1 and len(held.idle) == 1
    storage.close()
