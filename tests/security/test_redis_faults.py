"""Redis killed (SIGKILL) and restarted under load, through both doors and the ASGI middleware.

A private redis-server (append-only file, fsync on every write, so what it acknowledged
survives the kill) serves clients that each increment their own session's counter in a loop.
The orchestration moves on progress, never on timing: once every client has committed a few
times the server is killed; once every client has seen a few failed requests it is restarted;
once every client has committed a few more times the load stops. Then:

- every failure was StoreUnavailableError (a 503 through the middleware), never anything else;
- no request that began and ended while the server was down succeeded;
- every client recovered after the restart, with its own session (none was lost or swapped);
- each stored counter is whole and lies between the commits acknowledged and those plus the
  commits whose answer was lost in the outage (a write may land just before the kill).
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from websession import StoreUnavailableError, create_cookie

from ..servers.redis import RedisServer
from .counter_app import SECRET, create_app, create_storage

CLIENTS = 16
#: Each phase waits for this much progress from every client.
PROGRESS = 5
#: A guard against hanging, not an assertion on speed.
GUARD_SECONDS = 60


@dataclass
class Client:
    index: int
    header: str = ""
    acknowledged: int = 0
    unanswered_commits: int = 0  # commits that failed: they may or may not have landed
    failures: dict[str, int] = field(default_factory=lambda: {"down": 0})
    successes: dict[str, int] = field(default_factory=lambda: {"up": 0, "restarting": 0, "recovered": 0})
    surprises: list[str] = field(default_factory=list)


class Phases:
    """Where the server is; requests record the phase they began and ended in."""

    def __init__(self) -> None:
        self.name = "up"

    def wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + GUARD_SECONDS
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"no progress: {what}")
            time.sleep(0.01)


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[RedisServer]:
    """A private redis-server whose acknowledged writes survive SIGKILL (AOF, fsync always)."""
    redis_server = RedisServer(tmp_path / "redis", None, "--appendonly", "yes", "--appendfsync", "always")
    redis_server.start()
    yield redis_server
    redis_server.stop()


def check(clients: list[Client], server: RedisServer, prefix: str) -> None:
    import json

    redis_client = server.client()
    try:
        for client in clients:
            assert client.surprises == [], client.surprises[:3]
            key = prefix + find_id(client.header)
            stored = json.loads(redis_client.get(key))  # whole JSON, or this raises
            assert stored["client"] == client.index
            assert client.acknowledged <= stored["n"] <= client.acknowledged + client.unanswered_commits
            assert client.failures["down"] >= PROGRESS and client.successes["recovered"] >= PROGRESS
    finally:
        redis_client.close()


def find_id(header: str) -> str:
    value = create_cookie("__session", secrets=[SECRET]).parse(header)
    assert isinstance(value, str)
    return value


def outage(phases: Phases, server: RedisServer, clients: list[Client]) -> None:
    """Drive the phases: kill after progress, restart after failures, stop after recovery."""
    phases.wait(lambda: all(c.successes["up"] >= PROGRESS for c in clients), "before the kill")
    server.stop()  # SIGKILL; returns once the process is gone
    phases.name = "down"
    phases.wait(lambda: all(c.failures["down"] >= PROGRESS for c in clients), "during the outage")
    phases.name = "restarting"
    server.start()
    phases.name = "recovered"
    phases.wait(lambda: all(c.successes["recovered"] >= PROGRESS for c in clients), "after the restart")


def record(client: Client, began: str, ended: str, ok: bool, error: BaseException | None) -> None:
    if ok:
        if began == ended == "down":
            client.surprises.append("a request succeeded while the server was down")
        if began == ended:
            client.successes[began] = client.successes.get(began, 0) + 1
    elif isinstance(error, StoreUnavailableError):
        if began == ended:
            client.failures[began] = client.failures.get(began, 0) + 1
    else:
        client.surprises.append(f"{type(error).__name__}: {error}")


def test_sync_door_through_a_redis_kill_and_restart(server: RedisServer) -> None:
    prefix = "fault-sync:"
    storage = create_storage(server.url, prefix, timeout=2)
    clients = [Client(i) for i in range(CLIENTS)]
    for client in clients:
        session = storage.get_session(None)
        session.update(client=client.index, n=0)
        client.header = storage.commit_session(session).split(";")[0]
    phases = Phases()
    stop = threading.Event()

    def work(client: Client) -> None:
        while not stop.is_set():
            began, committing = phases.name, False
            try:
                session = storage.get_session(client.header)
                if session.is_new or session["client"] != client.index:
                    client.surprises.append(f"lost or foreign session: {dict(session)}")
                    return
                session["n"] += 1
                committing = True
                storage.commit_session(session)
                client.acknowledged += 1
                record(client, began, phases.name, True, None)
            except Exception as exc:
                client.unanswered_commits += committing
                record(client, began, phases.name, False, exc)
                time.sleep(0.005)  # a failing client retries, but not in a hot loop

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    try:
        outage(phases, server, clients)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        storage.close()
    check(clients, server, prefix)


def test_async_door_through_a_redis_kill_and_restart(server: RedisServer) -> None:
    prefix = "fault-async:"
    clients = [Client(i) for i in range(CLIENTS)]

    async def main() -> None:
        storage = create_storage(server.url, prefix, timeout=2)
        for client in clients:
            session = await storage.aget_session(None)
            session.update(client=client.index, n=0)
            client.header = (await storage.acommit_session(session) or "").split(";")[0]
        phases = Phases()
        stop = asyncio.Event()

        async def work(client: Client) -> None:
            while not stop.is_set():
                began, committing = phases.name, False
                try:
                    session = await storage.aget_session(client.header)
                    if session.is_new or session["client"] != client.index:
                        client.surprises.append(f"lost or foreign session: {dict(session)}")
                        return
                    session["n"] += 1
                    committing = True
                    await storage.acommit_session(session)
                    client.acknowledged += 1
                    record(client, began, phases.name, True, None)
                except Exception as exc:
                    client.unanswered_commits += committing
                    record(client, began, phases.name, False, exc)
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(work(c)) for c in clients]
        try:
            await asyncio.to_thread(outage, phases, server, clients)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await storage.aclose()

    asyncio.run(main())
    check(clients, server, prefix)


def test_asgi_middleware_answers_503_through_a_redis_kill_and_restart(server: RedisServer) -> None:
    prefix = "fault-asgi:"
    clients = [Client(i) for i in range(CLIENTS)]
    statuses: dict[int, int] = {}

    async def main() -> None:
        storage = create_storage(server.url, prefix, timeout=2)
        app = create_app(storage)
        transport = httpx.ASGITransport(app=app)
        # One HTTP client per visitor, each with its own cookie jar, as browsers are.
        browsers = [httpx.AsyncClient(transport=transport, base_url="http://test") for _ in clients]
        try:
            for client, http in zip(clients, browsers, strict=True):
                response = await http.get("/start", params={"client": client.index})
                assert response.status_code == 200
                client.header = response.headers["set-cookie"].split(";")[0]
            phases = Phases()
            stop = asyncio.Event()

            async def work(client: Client, http: httpx.AsyncClient) -> None:
                last = 0
                while not stop.is_set():
                    began = phases.name
                    response = await http.get("/")
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    ended = phases.name
                    if response.status_code == 200:
                        body = response.json()
                        if body["client"] != client.index:
                            client.surprises.append(f"client {client.index} saw {body}")
                        # A 503'd commit may have landed before the kill: at most one each.
                        if not last < body["n"] <= last + 1 + client.unanswered_commits:
                            client.surprises.append(f"counter went from {last} to {body['n']}")
                        last = body["n"]
                        client.acknowledged, client.unanswered_commits = body["n"], 0
                        record(client, began, ended, True, None)
                    elif response.status_code == 503:
                        client.unanswered_commits += 1
                        record(client, began, ended, False, StoreUnavailableError("503"))
                        await asyncio.sleep(0.005)
                    else:
                        client.surprises.append(f"status {response.status_code}: {response.text[:200]}")
                        return
                    await asyncio.sleep(0)

            tasks = [asyncio.create_task(work(c, h)) for c, h in zip(clients, browsers, strict=True)]
            try:
                await asyncio.to_thread(outage, phases, server, clients)
            finally:
                stop.set()
                await asyncio.gather(*tasks)
        finally:
            for http in browsers:
                await http.aclose()
            await storage.aclose()

    asyncio.run(main())
    assert set(statuses) == {200, 503}, statuses
    check(clients, server, prefix)
