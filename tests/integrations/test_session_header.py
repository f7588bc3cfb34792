"""The session id in a header (``header="X-Session"``) for API and mobile clients.

The value is byte for byte the cookie's value, so one storage serves browsers (cookie) and API
clients (header) alike; a header that is absent, empty or tampered with gives a fresh session.
"""

from __future__ import annotations

from wsgiref.validate import validator

import flask
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from websession import ConfigurationError, create_cookie, create_cookie_session_storage
from websession.integrations import wsgi
from websession.integrations.asgi import SessionMiddleware, load_session
from websession.integrations.flask import SessionInterface

from .helpers import SECRET, session_id_of, stored
from .test_wsgi import BufferedClient

HEADER = "X-Session"


async def me(request: Request) -> JSONResponse:
    session = await load_session(request)
    return JSONResponse({"user": session.get("user"), "keys": sorted(session)})


async def login(request: Request) -> PlainTextResponse:
    session = await load_session(request)
    session.regenerate()
    session["user"] = request.query_params.get("name", "ada")
    return PlainTextResponse("ok")


async def visit(request: Request) -> JSONResponse:
    session = await load_session(request)
    session["visits"] = session.get("visits", 0) + 1
    return JSONResponse({"visits": session["visits"]})


async def logout(request: Request) -> PlainTextResponse:
    (await load_session(request)).destroy()
    return PlainTextResponse("bye")


ROUTES = [
    Route("/me", me),
    Route("/login", login, methods=["POST"]),
    Route("/visit", visit),
    Route("/logout", logout, methods=["POST"]),
]


def make_app(storage, **options) -> Starlette:
    options.setdefault("header", HEADER)
    return Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, storage=storage, **options)])


def api_client(storage, **options) -> TestClient:
    return TestClient(make_app(storage, **options))


def test_the_response_carries_the_header_and_no_set_cookie(storage):
    with api_client(storage) as client:
        response = client.post("/login?name=grace")
        token = response.headers[HEADER]
        assert response.headers.get_list("set-cookie") == []
        assert stored(storage, token) == {"user": "grace"}
        assert response.headers["vary"] == HEADER  # what the response depends on


def test_a_request_with_the_header_loads_the_session_and_an_unchanged_one_sends_nothing(storage):
    with api_client(storage) as client:
        token = client.post("/login").headers[HEADER]
        response = client.get("/me", headers={HEADER: token})
        assert response.json() == {"user": "ada", "keys": ["user"]}
        # Rolling refreshes the record's expiry in the read; the value did not change.
        assert HEADER.lower() not in response.headers
        changed = client.get("/visit", headers={HEADER: token})
        assert changed.json() == {"visits": 1} and HEADER.lower() not in changed.headers
        assert stored(storage, token) == {"user": "ada", "visits": 1}


def test_the_header_value_is_exactly_the_cookie_value(storage):
    """A token from the API works as a browser cookie, and a browser cookie as a token."""
    browser_app = Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, storage=storage)])
    with api_client(storage) as api, TestClient(browser_app) as browser:
        token = api.post("/login?name=grace").headers[HEADER]
        as_cookie = storage.cookie.serialize(session_id_of(storage, token)).split(";")[0]
        assert as_cookie == f"__session={token}"
        set_cookie = browser.post("/login?name=bob").headers["set-cookie"]
        assert set_cookie.startswith(f"__session={browser.cookies['__session']};")
        browser_value = browser.cookies["__session"]
        assert api.get("/me", headers={HEADER: browser_value}).json()["user"] == "bob"
        with TestClient(browser_app, cookies={"__session": token}) as other_browser:
            assert other_browser.get("/me").json()["user"] == "grace"


def test_cookie_storage_values_work_as_headers_too():
    storage = create_cookie_session_storage(cookie=create_cookie("__session", secrets=[SECRET]))
    with api_client(storage) as client:
        token = client.post("/login?name=ada").headers[HEADER]
        first = client.get("/visit", headers={HEADER: token})
        token = first.headers[HEADER]  # the data is the value: a change is a new value
        seen = client.get("/me", headers={HEADER: token}).json()
        assert seen == {"user": "ada", "keys": ["user", "visits"]}


def test_regenerate_sends_the_new_value(storage):
    with api_client(storage) as client:
        first = client.post("/login?name=ada").headers[HEADER]
        second = client.post("/login?name=ada", headers={HEADER: first}).headers[HEADER]
        assert second != first and session_id_of(storage, second) != session_id_of(storage, first)
        assert stored(storage, first) is None and stored(storage, second) == {"user": "ada"}


def test_destroy_sends_an_empty_value_and_the_old_token_stops_working(storage):
    with api_client(storage) as client:
        token = client.post("/login").headers[HEADER]
        response = client.post("/logout", headers={HEADER: token})
        assert HEADER.lower() in response.headers and response.headers[HEADER] == ""
        assert response.headers.get_list("set-cookie") == []
        assert client.get("/me", headers={HEADER: token}).json() == {"user": None, "keys": []}


@pytest.mark.parametrize(
    "bad",
    [
        "forged.value",
        "not-even-signed",
        "%zz%",
        ";__session=x",
        "x; __session=y",
        "\u00e9t\u00e9".encode(),  # not ASCII: sent as raw bytes
        "a" * 5000,
    ],
)
def test_a_tampered_header_gives_a_fresh_session_and_a_clearing_value(storage, counting_store, bad):
    with api_client(storage) as client:
        token = client.post("/login").headers[HEADER]
        counting_store.calls.clear()
        response = client.get("/me", headers={HEADER: bad})
        assert response.status_code == 200 and response.json() == {"user": None, "keys": []}
        assert counting_store.calls == []  # it never reached the store
        if response.headers.get(HEADER) is not None:
            assert response.headers[HEADER] == ""  # the client is told to forget what it sent
        assert client.get("/me", headers={HEADER: token}).json()["user"] == "ada"


def test_a_tampered_signature_tells_the_client_to_forget_it(storage):
    with api_client(storage) as client:
        token = client.post("/login").headers[HEADER]
        response = client.get("/me", headers={HEADER: token[:-3] + "AAA"})
        assert response.json()["user"] is None and response.headers[HEADER] == ""


def test_an_absent_or_empty_header_gives_a_fresh_session_and_sends_nothing(storage, counting_store):
    with api_client(storage) as client:
        for headers in ({}, {HEADER: ""}):
            response = client.get("/me", headers=headers)
            assert response.json() == {"user": None, "keys": []}
            assert HEADER.lower() not in response.headers
    assert counting_store.calls == []


def test_the_cookie_is_ignored_in_header_mode(storage):
    browser_app = Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, storage=storage)])
    with TestClient(browser_app) as browser:
        browser.post("/login")
        cookie = browser.cookies["__session"]
    with api_client(storage) as client:
        response = client.get("/me", headers={"Cookie": f"__session={cookie}"})
        assert response.json() == {"user": None, "keys": []}
        assert response.headers.get_list("set-cookie") == []  # nor is a stale cookie expired


def test_vary_names_the_header_and_merges_with_the_apps_own(storage):
    async def varies(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"Vary": "Accept-Encoding"})

    async def covered(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"Vary": "accept, x-session"})

    routes = [Route("/varies", varies), Route("/covered", covered)]
    app = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, storage=storage, header=HEADER)])
    with TestClient(app) as client:
        assert client.get("/varies").headers.get_list("vary") == ["Accept-Encoding", HEADER]
        assert client.get("/covered").headers.get_list("vary") == ["accept, x-session"]
    with api_client(storage, vary_cookie=False) as client:
        assert client.get("/me").headers.get_list("vary") == []


def test_a_websocket_handshake_with_the_header_gets_the_session(storage):
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"user": websocket.session.get("user")})
        await websocket.close()

    app = Starlette(
        routes=[*ROUTES, WebSocketRoute("/ws", socket)],
        middleware=[Middleware(SessionMiddleware, storage=storage, header=HEADER, lazy=True)],
    )
    with TestClient(app) as client:
        token = client.post("/login").headers[HEADER]
        with client.websocket_connect("/ws", headers={HEADER: token}) as ws:
            assert ws.receive_json() == {"user": "ada"}
        with client.websocket_connect("/ws", headers={"Cookie": f"__session={token}"}) as ws:
            assert ws.receive_json() == {"user": None}


def test_header_mode_and_lazy_together(storage, counting_store):
    with api_client(storage, lazy=True) as client:
        token = client.post("/login").headers[HEADER]
        counting_store.calls.clear()
        assert client.get("/me", headers={HEADER: token}).json()["user"] == "ada"
        assert counting_store.calls == ["read"]


@pytest.mark.parametrize("name", ["", "X Session", "X-Session:", "Cookie", "set-cookie", "Authorization", 7])
def test_a_header_name_that_cannot_carry_the_id_is_refused_at_setup(storage, name):
    with pytest.raises(ConfigurationError, match="header="):
        SessionMiddleware(Starlette(), storage, header=name)
    with pytest.raises(ConfigurationError, match="header="):
        wsgi.SessionMiddleware(lambda environ, start_response: [], storage, header=name)
    with pytest.raises(ConfigurationError, match="header="):
        SessionInterface(storage, header=name)


def test_over_real_http_with_httpx(storage):
    from .helpers import serve_asgi

    with serve_asgi(make_app(storage)) as base, httpx.Client(base_url=base) as client:
        token = client.post("/login?name=ada").headers[HEADER]
        assert client.get("/me", headers={HEADER: token}).json()["user"] == "ada"
        assert not client.cookies


# -- WSGI -----------------------------------------------------------------------------------------


def wsgi_app(environ, start_response):
    session = wsgi.get_session(environ)
    path = environ["PATH_INFO"]
    if path == "/login":
        session.regenerate()
        session["user"] = "ada"
    elif path == "/logout":
        session.destroy()
    body = str(session.get("user")).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def test_wsgi_header_mode(storage):
    client = BufferedClient(validator(wsgi.SessionMiddleware(wsgi_app, storage, header=HEADER)))
    response = client.get("/login")
    token = response.headers[HEADER]
    assert response.headers.getlist("Set-Cookie") == [] and response.headers["Vary"] == HEADER
    assert stored(storage, token) == {"user": "ada"}
    same = client.get("/", headers={HEADER: token})
    assert same.text == "ada" and HEADER not in same.headers
    assert client.get("/", headers={"Cookie": f"__session={token}"}).text == "None"  # cookie ignored
    tampered = client.get("/", headers={HEADER: token[:-2] + "xx"})
    assert tampered.text == "None" and tampered.headers[HEADER] == ""
    renewed = client.get("/login", headers={HEADER: token}).headers[HEADER]
    assert renewed not in ("", token) and stored(storage, token) is None
    gone = client.get("/logout", headers={HEADER: renewed})
    assert gone.headers[HEADER] == "" and stored(storage, renewed) is None


# -- Flask ----------------------------------------------------------------------------------------


def test_flask_header_mode(storage):
    app = flask.Flask(__name__)
    app.session_interface = SessionInterface(storage, header=HEADER)

    @app.post("/login")
    def flask_login():
        flask.session.regenerate()
        flask.session["user"] = "ada"
        return "ok"

    @app.get("/me")
    def flask_me():
        return str(flask.session.get("user"))

    @app.post("/logout")
    def flask_logout():
        flask.session.clear()
        return "bye"

    client = app.test_client()
    response = client.post("/login")
    token = response.headers[HEADER]
    assert response.headers.getlist("Set-Cookie") == [] and response.headers["Vary"] == HEADER
    assert client.get_cookie("__session") is None
    same = client.get("/me", headers={HEADER: token})
    assert same.text == "ada" and HEADER not in same.headers
    assert client.get("/me", headers={"Cookie": f"__session={token}"}).text == "None"
    tampered = client.get("/me", headers={HEADER: "forged.value"})
    assert tampered.text == "None" and tampered.headers[HEADER] == ""
    gone = client.post("/logout", headers={HEADER: token})
    assert gone.headers[HEADER] == "" and stored(storage, token) is None
