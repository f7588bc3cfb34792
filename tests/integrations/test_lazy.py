"""Lazy loading (``lazy=True``): a request that never touches its session never reaches the store.

Driven through real apps: Starlette and FastAPI under their test clients, WSGI under
werkzeug's client and wsgiref's validator, Flask under its test client. The store counts its
calls (``CountingStore``), so "no round trip" is asserted, not assumed.
"""

from __future__ import annotations

import asyncio
import threading
from wsgiref.validate import validator

import flask
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient as FastAPIClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from websession import Session, StoreUnavailableError, create_cookie, create_cookie_session_storage
from websession.integrations import wsgi
from websession.integrations.asgi import SessionMiddleware, SessionNotLoadedError, load_session
from websession.integrations.fastapi import SessionDep
from websession.integrations.flask import SessionInterface

from .helpers import SECRET, stored
from .test_wsgi import BufferedClient

# -- Starlette ------------------------------------------------------------------------------------


async def static(request: Request) -> PlainTextResponse:
    return PlainTextResponse("static")


async def count(request: Request) -> JSONResponse:
    session = await load_session(request)
    session["n"] = session.get("n", 0) + 1
    return JSONResponse({"n": request.session["n"]})


def sync_count(request: Request) -> JSONResponse:
    # A plain `def` endpoint: Starlette runs it in its threadpool, where first use loads.
    request.session["n"] = request.session.get("n", 0) + 1
    return JSONResponse({"n": request.session["n"], "thread": threading.current_thread().name})


async def unloaded(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(request.session.get("n")))  # async, never loaded: refused


async def early_reference(request: Request) -> JSONResponse:
    session = request.session  # taken before loading: the same object is filled in place
    loaded = await load_session(request)
    return JSONResponse({"same": loaded is session, "n": session.get("n"), "repr_ok": True})


async def logout(request: Request) -> PlainTextResponse:
    (await load_session(request)).destroy()
    return PlainTextResponse("bye")


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"n": websocket.session.get("n")})  # WebSockets are loaded up front
    await websocket.close()


ROUTES = [
    Route("/static", static),
    Route("/count", count),
    Route("/sync", sync_count),
    Route("/unloaded", unloaded),
    Route("/early", early_reference),
    Route("/logout", logout, methods=["POST"]),
    WebSocketRoute("/ws", socket),
]


def make_app(storage, routes=ROUTES, **options) -> Starlette:
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, storage=storage, **options)])


def session_cookie(response) -> str | None:
    mine = [c for c in response.headers.get_list("set-cookie") if c.startswith("__session=")]
    return mine[0] if mine else None


def test_a_route_that_never_touches_the_session_costs_no_store_io_even_with_a_cookie(storage, counting_store):
    with TestClient(make_app(storage, lazy=True)) as client:
        assert client.get("/count").json() == {"n": 1}
        counting_store.calls.clear()
        response = client.get("/static")
        assert response.text == "static" and counting_store.calls == []
        assert session_cookie(response) is None  # nothing committed, not even the rolling cookie
        assert response.headers["vary"] == "Cookie"  # still a page that may depend on the cookie
        assert client.get("/count").json() == {"n": 2}
        assert counting_store.calls == ["read", "update"]


def test_the_default_is_eager_and_reads_for_every_request_with_a_cookie(storage, counting_store):
    with TestClient(make_app(storage)) as client:
        client.get("/count")
        counting_store.calls.clear()
        client.get("/static")
        assert counting_store.calls == ["read"]
        assert client.get("/unloaded").text == "1"  # async code may touch request.session at once


def test_a_sync_endpoint_loads_on_first_use_from_the_threadpool(storage, counting_store):
    with TestClient(make_app(storage, lazy=True)) as client:
        first = client.get("/sync").json()
        assert first["n"] == 1 and first["thread"] != threading.main_thread().name
        assert client.get("/sync").json()["n"] == 2
        assert client.get("/count").json() == {"n": 3}
    assert counting_store.calls == ["create", "read", "update", "read", "update"]


def test_async_code_touching_an_unloaded_session_gets_an_error_that_says_how_to_fix_it(
    storage, counting_store
):
    with TestClient(make_app(storage, lazy=True)) as client:
        client.get("/count")
        counting_store.calls.clear()
        with pytest.raises(SessionNotLoadedError) as refused:
            client.get("/unloaded")
    message = str(refused.value)
    assert "load_session(request)" in message and "SessionDep" in message and "def" in message
    assert counting_store.calls == []  # it refused before any I/O: the event loop never blocked


def test_a_reference_taken_before_loading_is_filled_in_place(storage, counting_store):
    with TestClient(make_app(storage, lazy=True)) as client:
        client.get("/count")
        assert client.get("/early").json() == {"same": True, "n": 1, "repr_ok": True}


def test_load_session_twice_reads_once_and_concurrent_loads_agree(storage, counting_store):
    seen = {}

    async def twice(request: Request) -> PlainTextResponse:
        first, second = await asyncio.gather(load_session(request), load_session(request))
        third = await load_session(request)
        seen["same"] = first is second is third is request.session
        seen["n"] = third.get("n")
        third["n"] = third["n"] + 1
        return PlainTextResponse("ok")

    with TestClient(make_app(storage, [*ROUTES, Route("/twice", twice)], lazy=True)) as client:
        client.get("/count")
        counting_store.calls.clear()
        client.get("/twice")
        assert seen == {"same": True, "n": 1}
        # Two loads raced and both read; one session was kept and committed once.
        assert counting_store.calls in (["read", "read", "update"], ["read", "update"])
        assert client.get("/count").json() == {"n": 3}


def test_a_thread_of_the_apps_own_loads_through_the_sync_door(storage, counting_store):
    async def in_thread(request: Request) -> PlainTextResponse:
        # asyncio.to_thread is not an AnyIO worker: no way back to the loop, and none needed.
        value = await asyncio.to_thread(lambda: request.session.get("n"))
        return PlainTextResponse(str(value))

    with TestClient(make_app(storage, [*ROUTES, Route("/thread", in_thread)], lazy=True)) as client:
        client.get("/count")
        assert client.get("/thread").text == "1"


def test_cookie_storage_loads_anywhere_since_loading_is_no_io():
    storage = create_cookie_session_storage(cookie=create_cookie("__session", secrets=[SECRET]))
    with TestClient(make_app(storage, lazy=True)) as client:
        client.get("/count")
        assert client.get("/unloaded").text == "1"
        assert session_cookie(client.get("/static")) is None


def test_an_unloaded_session_is_a_session_and_its_repr_does_not_load(storage, counting_store):
    seen = {}

    async def inspect(request: Request) -> PlainTextResponse:
        session = request.session
        seen.update(kind=isinstance(session, Session), repr=repr(session), is_dict=isinstance(session, dict))
        return PlainTextResponse("ok")

    with TestClient(make_app(storage, [*ROUTES, Route("/inspect", inspect)], lazy=True)) as client:
        client.get("/count")
        counting_store.calls.clear()
        client.get("/inspect")
    assert seen == {"kind": True, "repr": "<LazySession (not loaded yet)>", "is_dict": False}
    assert counting_store.calls == []


def test_destroy_after_loading_still_deletes_and_expires(storage):
    with TestClient(make_app(storage, lazy=True)) as client:
        client.get("/count")
        old = client.cookies["__session"]
        response = client.post("/logout")
        assert "Expires=Thu, 01 Jan 1970" in (session_cookie(response) or "")
        assert stored(storage, old) is None


def test_websockets_are_loaded_up_front_under_lazy(storage, counting_store):
    with TestClient(make_app(storage, lazy=True)) as client:
        client.get("/count")
        counting_store.calls.clear()
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_json() == {"n": 1}
    assert counting_store.calls == ["read"]


def test_store_down_only_fails_the_requests_that_use_the_session(sqlite_storage, outage):
    async def forgiving(request: Request) -> PlainTextResponse:
        try:
            await load_session(request)
        except StoreUnavailableError:
            return PlainTextResponse("anonymous page")
        return PlainTextResponse("signed in page")

    routes = [*ROUTES, Route("/forgiving", forgiving)]
    for app in (
        make_app(sqlite_storage, routes, lazy=True),
        # Starlette's error middleware inside ours turns the error into a 500 first.
        SessionMiddleware(Starlette(routes=routes), sqlite_storage, lazy=True),
    ):
        with TestClient(app, raise_server_exceptions=False) as client:
            client.get("/count")
            outage.block_all()
            assert client.get("/static").text == "static"
            down = client.get("/count")
            assert down.status_code == 503 and down.text.startswith("Service Unavailable")
            assert session_cookie(down) is None
            assert client.get("/sync").status_code == 503
            assert client.get("/forgiving").text == "anonymous page"  # the app chose to carry on
            outage.end()
            assert client.get("/forgiving").text == "signed in page"


# -- FastAPI --------------------------------------------------------------------------------------


def fastapi_app(storage) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, storage=storage, lazy=True)

    @app.get("/async")
    async def with_async(session: SessionDep) -> dict[str, int]:
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    @app.get("/sync")
    def with_sync(session: SessionDep) -> dict[str, int]:
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def test_fastapi_session_dep_loads_for_sync_and_async_endpoints(storage, counting_store):
    with FastAPIClient(fastapi_app(storage)) as client:
        assert client.get("/async").json() == {"n": 1}
        assert client.get("/sync").json() == {"n": 2}
        counting_store.calls.clear()
        assert client.get("/health").json() == {"ok": "yes"}
        assert counting_store.calls == []
        assert client.get("/async").json() == {"n": 3}


# -- WSGI -----------------------------------------------------------------------------------------


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/static":
        body = b"static"
    else:
        session = wsgi.get_session(environ)
        session["n"] = session.get("n", 0) + 1
        body = str(session["n"]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def wsgi_client(storage, app=wsgi_app, **options) -> BufferedClient:
    return BufferedClient(validator(wsgi.SessionMiddleware(app, storage, lazy=True, **options)))


def test_wsgi_reads_only_when_the_app_uses_the_session(storage, counting_store):
    client = wsgi_client(storage)
    assert client.get("/").text == "1"
    counting_store.calls.clear()
    response = client.get("/static")
    assert response.text == "static" and counting_store.calls == []
    assert response.headers.getlist("Set-Cookie") == [] and response.headers["Vary"] == "Cookie"
    assert client.get("/").text == "2"
    assert counting_store.calls == ["read", "update"]


def test_wsgi_store_down_fails_only_the_requests_that_use_the_session(sqlite_storage, outage):
    def generator_app(environ, start_response):
        # Nothing runs until the server iterates: the load fails before the status line.
        session = wsgi.get_session(environ)
        session["n"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"secret page"

    def catches(environ, start_response):
        try:
            wsgi.get_session(environ).get("n")
        except StoreUnavailableError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"error page"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = wsgi_client(sqlite_storage)
    client.get("/")
    cookie = client.get_cookie("__session").value
    outage.block_all()
    assert client.get("/static").text == "static"
    for app in (wsgi_app, generator_app, catches):
        other = wsgi_client(sqlite_storage, app)
        other.set_cookie("__session", cookie)
        response = other.get("/")
        assert response.status_code == 503, app.__name__
        assert response.text.startswith("Service Unavailable")
        assert response.headers.getlist("Set-Cookie") == []
    outage.end()
    assert client.get("/").text == "2"


# -- Flask ----------------------------------------------------------------------------------------


def flask_app(storage, **options) -> flask.Flask:
    app = flask.Flask(__name__)
    app.session_interface = SessionInterface(storage, lazy=True, **options)

    @app.get("/")
    def home():
        flask.session["n"] = flask.session.get("n", 0) + 1
        return {"n": flask.session["n"]}

    @app.get("/public")
    def public():
        return "public"

    @app.post("/force")
    def force():
        flask.session.modified = True  # the first use may be this very flag
        return "ok"

    return app


def test_flask_reads_only_when_the_view_uses_the_session(storage, counting_store):
    client = flask_app(storage).test_client()
    assert client.get("/").json == {"n": 1}
    counting_store.calls.clear()
    response = client.get("/public")
    assert response.text == "public" and counting_store.calls == []
    assert response.headers.getlist("Set-Cookie") == [] and "Vary" not in response.headers
    assert client.get("/").json == {"n": 2}
    assert counting_store.calls == ["read", "update"]


def test_flask_modified_flag_is_a_use(storage, counting_store):
    client = flask_app(storage).test_client()
    client.get("/")
    counting_store.calls.clear()
    client.post("/force")
    assert counting_store.calls == ["read", "update"]


def test_flask_session_transaction_works_lazily(storage):
    client = flask_app(storage).test_client()
    with client.session_transaction() as session:
        session["n"] = 41
    assert client.get("/").json == {"n": 42}


def test_flask_store_down_answers_503_only_where_the_session_is_used(sqlite_storage, outage):
    app = flask_app(sqlite_storage)

    @app.errorhandler(503)
    def maintenance(error):
        return "be right back", 503

    client = app.test_client()
    client.get("/")
    outage.block_all()
    assert client.get("/public").text == "public"
    response = client.get("/")
    assert (response.status_code, response.text) == (503, "be right back")
    assert response.headers.getlist("Set-Cookie") == []
    outage.end()
    assert client.get("/").json == {"n": 2}
