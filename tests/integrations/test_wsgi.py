"""The generic WSGI middleware, checked by wsgiref's validator and driven by werkzeug's client."""

from __future__ import annotations

import sys
from wsgiref.validate import validator

import pytest
from werkzeug.test import Client

from websession import Session
from websession.integrations.wsgi import SessionMiddleware, get_session

from .helpers import stored


def counter_app(environ, start_response):
    session = get_session(environ)
    path = environ["PATH_INFO"]
    if path == "/login":
        session.regenerate()
        session["user"] = "ada"
    elif path == "/logout":
        session.destroy()
    elif path == "/peek":
        pass
    else:
        session["n"] = session.get("n", 0) + 1
    body = f"{session.get('user')} {session.get('n')}".encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Set-Cookie", "theme=dark")],
    )
    return [body]


class BufferedClient(Client):
    """werkzeug's client, reading (and closing) each response body as a server would."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def make(storage, app=counter_app, **options):
    return BufferedClient(validator(SessionMiddleware(app, storage, **options)))


def session_cookies(response) -> list[str]:
    return [c for c in response.headers.getlist("Set-Cookie") if c.startswith("__session=")]


def test_counter_and_login_logout(storage):
    client = make(storage)
    assert [client.get("/").text for _ in range(2)] == ["None 1", "None 2"]
    old = client.get_cookie("__session").value
    assert client.get("/login").text == "ada 2"
    assert client.get_cookie("__session").value != old
    assert stored(storage, old) is None
    signed_in = client.get_cookie("__session").value
    client.get("/logout")
    assert client.get_cookie("__session") is None
    replay = make(storage)
    replay.set_cookie("__session", signed_in)
    assert replay.get("/peek").text == "None None"


def test_no_cookie_no_store_io_and_other_cookies_kept(storage, counting_store):
    response = make(storage).get("/peek")
    assert counting_store.calls == []
    assert response.headers.getlist("Set-Cookie") == ["theme=dark"]
    assert response.headers["Vary"] == "Cookie"


def test_set_cookie_is_appended_after_the_apps_own(storage):
    response = make(storage).get("/")
    names = [c.split("=")[0] for c in response.headers.getlist("Set-Cookie")]
    assert names == ["theme", "__session"]


def test_environ_holds_session_and_get_session_explains_a_missing_middleware(storage):
    seen = {}

    def app(environ, start_response):
        seen["session"] = environ["websession.session"]
        seen["storage"] = environ["websession.storage"]
        start_response("204 No Content", [])
        return []

    make(storage, app).get("/")
    assert isinstance(seen["session"], Session) and seen["storage"] is storage
    with pytest.raises(KeyError, match="SessionMiddleware"):
        get_session({})


def test_app_that_starts_the_response_lazily(storage):
    def lazy(environ, start_response):
        session = get_session(environ)
        session["lazy"] = True
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"one "
        session["late"] = True  # after start_response: committed when the body is closed
        yield b"two"

    client = make(storage, lazy)
    assert client.get("/").text == "one two"
    assert stored(storage, client.get_cookie("__session").value) == {"lazy": True, "late": True}


def test_error_after_start_keeps_the_cookie_in_the_replacement_headers(storage):
    sent = []

    def failing(environ, start_response):
        get_session(environ)["x"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"failed"]

    def start_response(status, headers, exc_info=None):
        sent.append((status, [v for k, v in headers if k == "Set-Cookie"]))
        return lambda data: None

    body = SessionMiddleware(failing, storage)({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, start_response)
    assert b"".join(body) == b"failed"
    assert [status for status, _ in sent] == ["200 OK", "500 Internal Server Error"]
    assert sent[0][1] == sent[1][1] and len(sent[0][1]) == 1
    assert storage.store.calls == ["create"]  # committed once


def test_a_5xx_or_an_error_commits_nothing(storage):
    def failing(environ, start_response):
        get_session(environ)["debit"] = 100
        if environ["PATH_INFO"] == "/exc":
            try:
                raise ValueError("the transfer failed")
            except ValueError:
                start_response("500 Internal Server Error", [], sys.exc_info())
        else:
            start_response("502 Bad Gateway", [])
        return [b"failed"]

    for path in ("/exc", "/502"):
        sent = []
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
        body = SessionMiddleware(failing, storage)(environ, lambda s, h, e=None: sent.append(h))
        assert b"".join(body) == b"failed"
        assert [v for k, v in sent[0] if k == "Set-Cookie"] == []
    assert storage.store.calls == []


def test_commit_on_error_commits_a_5xx(storage):
    def failing(environ, start_response):
        get_session(environ)["debit"] = 100
        start_response("500 Internal Server Error", [])
        return [b"failed"]

    sent = []
    middleware = SessionMiddleware(failing, storage, commit_on_error=True)
    b"".join(middleware({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda s, h, e=None: sent.append(h)))
    assert storage.store.calls == ["create"]


def test_store_down_while_reading(sqlite_storage, outage):
    ran = []

    def app(environ, start_response):
        ran.append(True)
        return counter_app(environ, start_response)

    client = make(sqlite_storage, app)
    client.get("/")
    outage.block_all()
    response = client.get("/")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert session_cookies(response) == [] and ran == [True]
    outage.end()
    assert client.get("/").text == "None 2"


def test_store_down_while_committing_drops_the_apps_body_and_closes_it(sqlite_storage, outage):
    closed = []

    class Body:
        def __iter__(self):
            yield b"secret page"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        get_session(environ)["n"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    outage.block_writes()
    response = make(sqlite_storage, app).get("/")
    assert response.status_code == 503
    assert b"secret page" not in response.data and response.text.startswith("Service Unavailable")
    assert session_cookies(response) == [] and closed == [True]


def test_store_down_while_a_lazy_app_commits(sqlite_storage, outage):
    def lazy(environ, start_response):
        get_session(environ)["n"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"secret page"

    outage.block_writes()
    response = make(sqlite_storage, lazy).get("/")
    assert response.status_code == 503 and b"secret" not in response.data


def test_unavailable_status_is_configurable(sqlite_storage, outage):
    client = make(sqlite_storage, unavailable_status=500)
    client.get("/")
    outage.block_all()
    assert client.get("/").status == "500 Internal Server Error"


def test_app_calling_a_store_that_is_down_gets_503(sqlite_storage, outage):
    def app(environ, start_response):
        session = get_session(environ)
        if environ["PATH_INFO"] == "/destroy":
            outage.block_all()
            sqlite_storage.destroy_session(session)
        session["n"] = 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = make(sqlite_storage, app)
    client.get("/")
    assert stored(sqlite_storage, client.get_cookie("__session").value) == {"n": 1}
    response = client.get("/destroy")
    assert response.status_code == 503 and session_cookies(response) == []
