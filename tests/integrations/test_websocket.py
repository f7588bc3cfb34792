"""WebSocket sessions: loaded from the handshake's cookie, committed over the socket.

Driven through Starlette's TestClient, a hand-made ASGI harness where the order of events
matters, and a real uvicorn server with the ``websockets`` client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from websession import (
    ConfigurationError,
    CookieNotDeliverableError,
    SessionError,
    SessionStorage,
    create_cookie,
    create_cookie_session_storage,
)
from websession.integrations.asgi import SessionMiddleware, WebSocketSession, websocket_session
from websession.integrations.fastapi import WebSocketSessionDep
from websession.stores.memory import MemoryStore

from .helpers import SECRET, make_cookie, serve_asgi, stored

# -- the app: HTTP views, and a socket that obeys JSON commands --------------------------------


async def peek(request: Request) -> JSONResponse:
    return JSONResponse(dict(request.session))


async def put(request: Request) -> PlainTextResponse:
    request.session[request.query_params["key"]] = request.query_params["value"]
    return PlainTextResponse("ok")


async def logout(request: Request) -> PlainTextResponse:
    request.session.destroy()
    return PlainTextResponse("bye")


async def socket(websocket: WebSocket) -> None:
    """Commands: {"op": "set"|"del"|"commit"|"regenerate"|"login"|"logout"|"destroy"|"read"|"close"|
    "fail"}."""
    await websocket.accept()
    session = websocket_session(websocket)
    try:
        while True:
            command = await websocket.receive_json()
            op = command["op"]
            try:
                if op == "set":
                    session[command["key"]] = command["value"]
                elif op == "del":
                    del session[command["key"]]
                elif op == "commit":
                    await session.commit()
                elif op == "regenerate":
                    session.regenerate()
                elif op == "login":
                    session.login(command["user"])
                elif op == "logout":
                    session.logout()
                elif op == "destroy":
                    session.destroy()
                elif op == "close":
                    await websocket.close()
                    return
                elif op == "fail":
                    raise RuntimeError("the socket app failed")
                reply = {"data": session.data, "destroyed": session.destroyed}
            except SessionError as exc:
                reply = {"error": type(exc).__name__, "message": str(exc)}
            await websocket.send_json(reply)
    except WebSocketDisconnect:
        pass


ROUTES = [
    Route("/peek", peek),
    Route("/put", put, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    WebSocketRoute("/ws", socket),
]


def make_app(storage, **options) -> Starlette:
    return Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, storage=storage, **options)])


def signed_in(client: TestClient) -> str:
    """Start a session over HTTP; return its cookie value."""
    client.post("/put?key=user&value=ada")
    return client.cookies["__session"]


def do(ws, op: str, **fields):
    ws.send_json({"op": op, **fields})
    return ws.receive_json()


def close(ws) -> None:
    """Ask the app to close the socket; wait for its close frame."""
    ws.send_json({"op": "close"})
    assert ws.receive()["type"] == "websocket.close"


@pytest.fixture(params=["memory", "sqlite"])
def any_storage(request, storage, sqlite_storage) -> SessionStorage:
    return storage if request.param == "memory" else sqlite_storage


# -- commit -------------------------------------------------------------------------------------


def test_a_commit_is_visible_to_the_next_http_request(any_storage):
    with TestClient(make_app(any_storage)) as client:
        cookie = signed_in(client)
        with client.websocket_connect("/ws") as ws:
            assert do(ws, "set", key="room", value="lobby")["data"] == {"user": "ada", "room": "lobby"}
            assert client.get("/peek").json() == {"user": "ada"}  # not before the commit
            do(ws, "commit")
            assert client.get("/peek").json() == {"user": "ada", "room": "lobby"}
            assert do(ws, "del", key="room")["data"] == {"user": "ada"}
            do(ws, "commit")
            assert client.get("/peek").json() == {"user": "ada"}
        assert client.cookies["__session"] == cookie  # the browser's cookie never changed


def test_an_unchanged_socket_does_no_store_io_beyond_the_read(storage, counting_store):
    with TestClient(make_app(storage)) as client:
        signed_in(client)
        counting_store.calls.clear()
        with client.websocket_connect("/ws") as ws:
            do(ws, "commit")
            close(ws)
    assert counting_store.calls == ["read"]


def test_what_is_left_is_committed_when_the_app_closes_the_socket(storage, counting_store):
    with TestClient(make_app(storage)) as client:
        cookie = signed_in(client)
        with client.websocket_connect("/ws") as ws:
            do(ws, "set", key="a", value=1)
            do(ws, "commit")
            do(ws, "set", key="b", value=2)
            counting_store.calls.clear()
            ws.send_json({"op": "close"})
            # The close frame arrives after the commit: the client may rely on it.
            assert ws.receive()["type"] == "websocket.close"
            assert counting_store.calls == ["update"]  # once
            assert stored(storage, cookie) == {"user": "ada", "a": 1, "b": 2}


def test_two_sockets_of_one_session_changing_different_keys_both_survive(any_storage):
    with TestClient(make_app(any_storage)) as client:
        signed_in(client)
        with client.websocket_connect("/ws") as first, client.websocket_connect("/ws") as second:
            # Both read the same record at their handshakes; each changes its own key.
            do(first, "set", key="a", value=1)
            do(second, "set", key="b", value=2)
            assert do(first, "commit")["data"] == {"user": "ada", "a": 1}
            # The second commit applies its change to what is stored now, and sees the first's.
            assert do(second, "commit")["data"] == {"user": "ada", "a": 1, "b": 2}
            do(first, "del", key="user")
            do(second, "set", key="c", value=3)
            do(second, "commit")
            do(first, "commit")
        assert client.get("/peek").json() == {"a": 1, "b": 2, "c": 3}


def test_a_commit_after_another_request_destroyed_the_session_does_not_bring_it_back(any_storage):
    with TestClient(make_app(any_storage)) as client:
        cookie = signed_in(client)
        with client.websocket_connect("/ws") as ws:
            do(ws, "set", key="room", value="lobby")
            client.post("/logout")
            reply = do(ws, "commit")
            assert reply == {"data": {}, "destroyed": True}  # the app can tell the user was signed out
            close(ws)
    assert stored(any_storage, cookie) is None


def test_destroy_over_a_socket_deletes_the_record_and_the_next_request_clears_the_cookie(storage):
    with TestClient(make_app(storage)) as client:
        cookie = signed_in(client)
        with client.websocket_connect("/ws") as ws:
            do(ws, "destroy")
            assert do(ws, "commit") == {"data": {}, "destroyed": True}
            assert stored(storage, cookie) is None  # signed out everywhere at once
            response = client.get("/peek")
            assert response.json() == {}
            assert "Expires=Thu, 01 Jan 1970" in response.headers["set-cookie"]
            # Whatever the socket sets afterwards would need a new cookie.
            do(ws, "set", key="x", value=1)
            assert do(ws, "commit")["error"] == "CookieNotDeliverableError"


# -- what needs a new cookie ---------------------------------------------------------------------


def test_regenerate_raises_and_says_to_do_it_over_http(storage):
    with TestClient(make_app(storage)) as client:
        cookie = signed_in(client)
        with client.websocket_connect("/ws") as ws:
            reply = do(ws, "regenerate")
            assert reply["error"] == "CookieNotDeliverableError"
            assert "regenerate or start the session over HTTP before opening the socket" in reply["message"]
            do(ws, "set", key="a", value=1)
            do(ws, "commit")  # the session is still usable, under its id
    assert stored(storage, cookie) == {"user": "ada", "a": 1}


def test_login_and_logout_are_refused_at_once_and_change_nothing(storage):
    """Signing in or out moves the session to a new id: a socket cannot send its cookie."""
    with TestClient(make_app(storage)) as client:
        cookie = signed_in(client)
        with client.websocket_connect("/ws") as ws:
            for op, fields in (("login", {"user": "grace"}), ("logout", {})):
                reply = do(ws, op, **fields)
                assert reply["error"] == "CookieNotDeliverableError"
            assert do(ws, "commit")["data"] == {"user": "ada"}  # nothing was half-changed
    assert stored(storage, cookie) == {"user": "ada"}


def test_a_new_session_with_data_cannot_be_committed_and_stores_nothing(storage, caplog):
    with TestClient(make_app(storage)) as client, client.websocket_connect("/ws") as ws:
        do(ws, "set", key="a", value=1)
        reply = do(ws, "commit")
        assert reply["error"] == "CookieNotDeliverableError"
        assert "the session is new" in reply["message"]
        with caplog.at_level(logging.WARNING, logger="websession"):
            close(ws)
    assert storage.store.calls == []
    assert "over the WebSocket /ws was not saved: the session is new" in caplog.text


def test_a_new_empty_session_commits_nothing_and_raises_nothing(storage):
    storage.save_uninitialized = True
    with TestClient(make_app(storage)) as client, client.websocket_connect("/ws") as ws:
        assert do(ws, "commit") == {"data": {}, "destroyed": False}
        close(ws)
    assert storage.store.calls == []


def test_cookie_storage_cannot_change_over_a_socket():
    storage = create_cookie_session_storage(cookie=create_cookie("__session", secrets=[SECRET]))
    with TestClient(make_app(storage)) as client:
        signed_in(client)
        with client.websocket_connect("/ws") as ws:
            assert do(ws, "commit") == {"data": {"user": "ada"}, "destroyed": False}
            do(ws, "set", key="a", value=1)
            assert "cookie storage" in do(ws, "commit")["message"]
            do(ws, "destroy")
            assert do(ws, "commit")["error"] == "CookieNotDeliverableError"
        assert client.get("/peek").json() == {"user": "ada"}


# -- failures ---------------------------------------------------------------------------------------


def test_a_store_outage_raises_to_the_app_writes_nothing_and_keeps_the_changes_pending(
    sqlite_storage, outage
):
    with TestClient(make_app(sqlite_storage)) as client:
        cookie = signed_in(client)
        with client.websocket_connect("/ws") as ws:
            do(ws, "set", key="debit", value=100)
            do(ws, "set", key="credit", value=100)
            do(ws, "del", key="user")
            outage.block_writes()
            reply = do(ws, "commit")
            assert reply["error"] == "StoreUnavailableError"  # the app's `await session.commit()` raised
            assert stored(sqlite_storage, cookie) == {"user": "ada"}  # nothing half-done
            outage.end()
            assert do(ws, "commit")["data"] == {"debit": 100, "credit": 100}
            assert stored(sqlite_storage, cookie) == {"debit": 100, "credit": 100}


def test_a_failing_commit_at_close_is_logged_and_the_socket_still_closes(sqlite_storage, outage, caplog):
    with TestClient(make_app(sqlite_storage)) as client:
        cookie = signed_in(client)
        with client.websocket_connect("/ws") as ws:
            do(ws, "set", key="a", value=1)
            outage.block_writes()
            with caplog.at_level(logging.WARNING, logger="websession"):
                ws.send_json({"op": "close"})
                message = ws.receive()
            assert message == {"type": "websocket.close", "code": 1000, "reason": ""}
        outage.end()
        assert stored(sqlite_storage, cookie) == {"user": "ada"}
    assert "session store unavailable, a change made at /ws was not saved" in caplog.text
    assert "Traceback" not in caplog.text


def test_a_failing_socket_app_commits_nothing_pending(storage):
    with TestClient(make_app(storage)) as client:
        cookie = signed_in(client)
        # The app's error reaches the test when it leaves the socket.
        with (
            pytest.raises(RuntimeError, match="the socket app failed"),
            client.websocket_connect("/ws") as ws,
        ):
            do(ws, "set", key="a", value=1)
            do(ws, "commit")
            do(ws, "set", key="half", value="written")
            ws.send_json({"op": "fail"})
    assert stored(storage, cookie) == {"user": "ada", "a": 1}


def test_commit_on_error_commits_what_a_failing_socket_app_left(storage):
    with TestClient(make_app(storage, commit_on_error=True)) as client:
        cookie = signed_in(client)
        with (
            pytest.raises(RuntimeError, match="the socket app failed"),
            client.websocket_connect("/ws") as ws,
        ):
            do(ws, "set", key="half", value="written")
            ws.send_json({"op": "fail"})
    assert stored(storage, cookie) == {"user": "ada", "half": "written"}


def test_websocket_session_explains_a_missing_middleware_or_an_http_request(storage):
    async def http(request: Request) -> PlainTextResponse:
        websocket_session(request)
        return PlainTextResponse("unreachable")

    app = Starlette(routes=[Route("/", http)], middleware=[Middleware(SessionMiddleware, storage=storage)])
    with TestClient(app) as client, pytest.raises(TypeError, match="SessionMiddleware"):
        client.get("/")


# -- the order of closing events, in a hand-made ASGI harness --------------------------------------


def run_socket(middleware: SessionMiddleware, cookie: str, incoming: list[dict], on_send=None) -> list[dict]:
    """Run one WebSocket connection to completion; return what the app sent."""
    messages = [{"type": "websocket.connect"}, *incoming]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message) -> None:
        sent.append(message)
        if on_send is not None:
            on_send(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [(b"cookie", f"__session={cookie}".encode())],
        "subprotocols": [],
    }
    asyncio.run(middleware(scope, receive, send))
    return sent


def test_a_client_disconnect_commits_before_the_app_hears_of_it(storage):
    seen = {}

    async def app(scope, receive, send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        scope["session"]["a"] = 1
        assert (await receive())["type"] == "websocket.disconnect"
        seen["stored"] = stored(storage, cookie)
        scope["session"]["goodbye"] = True  # after the disconnect: committed when the app returns

    with TestClient(make_app(storage)) as client:
        cookie = signed_in(client)
    run_socket(SessionMiddleware(app, storage), cookie, [{"type": "websocket.disconnect", "code": 1001}])
    assert seen["stored"] == {"user": "ada", "a": 1}
    assert stored(storage, cookie) == {"user": "ada", "a": 1, "goodbye": True}


def test_the_close_frame_goes_after_the_commit(storage):
    async def app(scope, receive, send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        scope["session"]["a"] = 1
        await send({"type": "websocket.close", "code": 1000})
        scope["session"]["after_close"] = True  # committed when the app returns

    with TestClient(make_app(storage)) as client:
        cookie = signed_in(client)
    at_close = []
    run_socket(
        SessionMiddleware(app, storage),
        cookie,
        [],
        on_send=lambda message: (
            message["type"] == "websocket.close" and at_close.append(stored(storage, cookie))
        ),
    )
    assert at_close == [{"user": "ada", "a": 1}]
    assert stored(storage, cookie) == {"user": "ada", "a": 1, "after_close": True}


def test_what_is_left_is_committed_when_the_app_returns_without_closing(storage):
    async def app(scope, receive, send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        scope["session"]["a"] = 1

    with TestClient(make_app(storage)) as client:
        cookie = signed_in(client)
    sent = run_socket(SessionMiddleware(app, storage), cookie, [])
    assert sent == [{"type": "websocket.accept"}]
    assert stored(storage, cookie) == {"user": "ada", "a": 1}


def test_a_send_to_a_client_that_has_gone_commits_what_is_left(storage):
    async def app(scope, receive, send) -> None:
        await receive()
        scope["session"]["a"] = 1
        await send({"type": "websocket.accept"})

    async def gone(message) -> None:
        raise OSError("the client has gone")  # what ASGI servers raise (uvicorn: ClientDisconnected)

    with TestClient(make_app(storage)) as client:
        cookie = signed_in(client)

    async def receive() -> dict:
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"cookie", f"__session={cookie}".encode())]}
    with pytest.raises(OSError):
        asyncio.run(SessionMiddleware(app, storage)(scope, receive, gone))
    assert stored(storage, cookie) == {"user": "ada", "a": 1}


class SlowStore(MemoryStore):
    """A memory store whose async update waits until the test lets it go on, and that
    records the changes each update applied."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.applied: list[tuple[dict, set]] = []

    async def aupdate(self, id, changes, expires, seen):
        self.entered.set()
        await self.release.wait()
        self.applied.append((dict(changes.set), set(changes.removed)))
        return self.update(id, changes, expires, seen)


def test_changes_made_by_another_task_while_a_commit_is_in_flight_are_kept():
    async def scenario() -> tuple[SlowStore, dict, bool]:
        store = SlowStore()
        storage = SessionStorage(cookie=make_cookie(), store=store)
        first = storage.get_session(None)
        first["user"] = "ada"
        cookie = storage.commit_session(first).split(";")[0]
        session = WebSocketSession(await storage.aget_session(cookie), storage)
        session["a"] = 1
        session["b"] = 1
        committing = asyncio.create_task(session.commit())
        await store.entered.wait()
        # Another task of the same socket, while the store is busy with the first commit.
        session["b"] = 2
        session["c"] = 3
        del session["user"]
        second = asyncio.create_task(session.commit())  # waits for the first: never applied twice
        await asyncio.sleep(0)
        store.release.set()
        await asyncio.gather(committing, second)
        return store, dict(storage.get_session(cookie)), session.modified

    store, data, modified = asyncio.run(scenario())
    assert store.applied == [({"a": 1, "b": 1}, set()), ({"b": 2, "c": 3}, {"user"})]
    assert data == {"a": 1, "b": 2, "c": 3}
    assert modified is False


# -- FastAPI ---------------------------------------------------------------------------------------


def test_a_fastapi_websocket_route_commits_through_the_typed_dependency(storage):
    app = FastAPI()
    app.add_middleware(SessionMiddleware, storage=storage)

    @app.post("/login")
    async def login(request: Request) -> dict[str, str]:
        request.session["user"] = "ada"
        return {"ok": "yes"}

    @app.get("/me")
    async def me(request: Request) -> dict[str, object]:
        return dict(request.session)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: WebSocketSessionDep) -> None:
        await websocket.accept()
        session["theme"] = await websocket.receive_text()
        await session.commit()
        await websocket.send_json({"user": session["user"], "committed": not session.modified})
        try:
            session.regenerate()
        except CookieNotDeliverableError as exc:
            await websocket.send_text(str(exc))
        await websocket.close()

    with TestClient(app) as client:
        client.post("/login")
        with client.websocket_connect("/ws") as socket:
            socket.send_text("dark")
            assert socket.receive_json() == {"user": "ada", "committed": True}
            assert "over HTTP before opening the socket" in socket.receive_text()
            assert client.get("/me").json() == {"user": "ada", "theme": "dark"}


def test_the_fastapi_dependency_refuses_an_http_endpoint(storage):
    app = FastAPI()
    app.add_middleware(SessionMiddleware, storage=storage)

    @app.get("/")
    async def home(session: WebSocketSessionDep) -> str:
        return "unreachable"

    with TestClient(app) as client, pytest.raises(ConfigurationError, match="WebSocket"):
        client.get("/")


# -- over a real server ----------------------------------------------------------------------------


def ws_url(base: str, path: str = "/ws") -> str:
    return base.replace("http://", "ws://") + path


def wait_for(condition, timeout: float = 10.0) -> bool:
    """Poll until ``condition()`` holds; a generous bound, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_over_uvicorn_with_a_real_websocket_client(sqlite_storage):
    from websockets.exceptions import ConnectionClosedOK
    from websockets.sync.client import connect

    def call(ws, op: str, **fields):
        ws.send(json.dumps({"op": op, **fields}))
        return json.loads(ws.recv(timeout=10))

    with serve_asgi(make_app(sqlite_storage)) as base, httpx.Client(base_url=base) as client:
        client.post("/put?key=user&value=ada")
        cookie = client.cookies["__session"]
        headers = {"Cookie": f"__session={cookie}"}
        with connect(ws_url(base), additional_headers=headers) as ws:
            call(ws, "set", key="room", value="lobby")
            call(ws, "commit")
            assert client.get("/peek").json() == {"user": "ada", "room": "lobby"}
            assert call(ws, "regenerate")["error"] == "CookieNotDeliverableError"
            call(ws, "set", key="closing", value=True)
            ws.send(json.dumps({"op": "close"}))
            with pytest.raises(ConnectionClosedOK):
                ws.recv(timeout=10)
        # The server sent its close frame after the commit.
        assert client.get("/peek").json() == {"user": "ada", "room": "lobby", "closing": True}

        # A client that just goes away: committed when the server hears of it.
        with connect(ws_url(base), additional_headers=headers) as ws:
            call(ws, "set", key="left", value=True)
        assert wait_for(lambda: client.get("/peek").json().get("left") is True)
        assert client.cookies["__session"] == cookie


def test_concurrent_sockets_over_uvicorn_lose_no_change(sqlite_storage):
    from websockets.sync.client import connect

    rounds = 15
    with serve_asgi(make_app(sqlite_storage)) as base, httpx.Client(base_url=base) as client:
        client.post("/put?key=user&value=ada")
        headers = {"Cookie": f"__session={client.cookies['__session']}"}
        errors: list[BaseException] = []

        def writer(name: str) -> None:
            try:
                with connect(ws_url(base), additional_headers=headers) as ws:
                    for i in range(rounds):
                        ws.send(json.dumps({"op": "set", "key": f"{name}{i}", "value": i}))
                        ws.recv(timeout=10)
                        ws.send(json.dumps({"op": "commit"}))
                        ws.recv(timeout=10)
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(name,)) for name in "abc"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        data = client.get("/peek").json()
    assert data == {"user": "ada", **{f"{n}{i}": i for n in "abc" for i in range(rounds)}}


def test_a_socket_commit_keeps_the_lifetime_cookie_options_give(storage):
    """cookie_options' max_age is the record's lifetime over HTTP; a commit over the socket
    must not shorten it to the storage's default."""
    month = 30 * 86400
    with TestClient(make_app(storage, cookie_options=lambda scope: {"max_age": month})) as client:
        cookie = signed_in(client)
        with client.websocket_connect("/ws") as ws:
            do(ws, "set", key="theme", value="dark")
            do(ws, "commit")
    session_id = storage.cookie.read(f"{storage.cookie.name}={cookie}").value
    record = storage.store.read(session_id, None)
    assert record.data == {"user": "ada", "theme": "dark"}
    assert (record.expires - storage.clock()).total_seconds() > month - 60
