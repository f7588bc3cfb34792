"""Late commits: changes made after the response headers were sent (a streaming body, a
background task) are committed when the browser's cookie can stay as it is, and logged when a
new cookie would be needed. ASGI (Starlette, uvicorn), Flask and plain WSGI."""

from __future__ import annotations

import asyncio
import logging
import sys

import flask
import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import Client

from websession import create_cookie, create_cookie_session_storage
from websession.integrations import wsgi
from websession.integrations.asgi import SessionMiddleware
from websession.integrations.flask import SessionInterface

from .helpers import SECRET, serve_asgi, session_id_of, stored

# -- ASGI -----------------------------------------------------------------------------------------


async def peek(request: Request) -> JSONResponse:
    return JSONResponse(dict(request.session))


async def start(request: Request) -> PlainTextResponse:
    request.session["user"] = "ada"
    return PlainTextResponse("ok")


def streaming(change):
    """A view whose streaming body calls ``change(session)`` between its two chunks."""

    async def view(request: Request) -> StreamingResponse:
        async def body():
            yield b"a"
            change(request.session)
            yield b"b"

        return StreamingResponse(body())

    return view


def set_key(session) -> None:
    session["streamed"] = True


def regenerate(session) -> None:
    session.regenerate()
    session["streamed"] = True


def destroy(session) -> None:
    session.destroy()


def fail(session) -> None:
    session["streamed"] = True
    raise RuntimeError("the stream failed")


async def background(request: Request) -> PlainTextResponse:
    def later() -> None:
        request.session["background"] = True

    request.session["view"] = True
    return PlainTextResponse("ok", background=BackgroundTask(later))


async def stream_then_background(request: Request) -> StreamingResponse:
    async def body():
        yield b"a"
        request.session["streamed"] = True

    def later() -> None:
        request.session["background"] = True

    return StreamingResponse(body(), background=BackgroundTask(later))


async def failed_stream(request: Request) -> StreamingResponse:
    async def body():
        yield b"a"
        request.session["streamed"] = True

    return StreamingResponse(body(), status_code=500)


ROUTES = [
    Route("/peek", peek),
    Route("/start", start),
    Route("/stream", streaming(set_key)),
    Route("/stream/regenerate", streaming(regenerate)),
    Route("/stream/destroy", streaming(destroy)),
    Route("/stream/clear", streaming(lambda session: session.clear())),
    Route("/stream/fail", streaming(fail)),
    Route("/background", background),
    Route("/both", stream_then_background),
    Route("/500", failed_stream),
]


def make_app(storage, **options) -> Starlette:
    return Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, storage=storage, **options)])


def test_a_change_in_a_streaming_body_is_committed(storage):
    with TestClient(make_app(storage)) as client:
        client.get("/start")
        assert client.get("/stream").text == "ab"
        assert client.get("/peek").json() == {"user": "ada", "streamed": True}


def test_a_change_in_a_background_task_is_committed(storage):
    with TestClient(make_app(storage)) as client:
        assert client.get("/background").text == "ok"  # a new session: its cookie went at the start
        assert client.get("/peek").json() == {"view": True, "background": True}


def test_a_stream_and_its_background_task_are_both_committed(storage, counting_store):
    with TestClient(make_app(storage)) as client:
        client.get("/start")
        counting_store.calls.clear()
        client.get("/both")
        assert counting_store.calls == ["read", "update", "update"]  # before the last chunk, then after
        assert client.get("/peek").json() == {"user": "ada", "streamed": True, "background": True}


def test_an_unchanged_stream_costs_no_further_store_io(storage, counting_store):
    async def quiet(request: Request) -> StreamingResponse:
        async def body():
            yield b"a"
            yield b"b"

        return StreamingResponse(body())

    app = Starlette(
        routes=[*ROUTES, Route("/quiet", quiet)], middleware=[Middleware(SessionMiddleware, storage=storage)]
    )
    with TestClient(app) as client:
        client.get("/start")
        counting_store.calls.clear()
        assert client.get("/quiet").text == "ab"
    assert counting_store.calls == ["read"]


def test_a_stream_is_committed_before_its_last_chunk_goes(storage):
    """A client that has read the whole stream finds its changes stored."""
    with TestClient(make_app(storage)) as client:
        client.get("/start")
        cookie = client.cookies["__session"]
    at_end: list[dict | None] = []

    async def run() -> None:
        async def receive() -> dict:
            await asyncio.sleep(3600)  # never a disconnect
            return {"type": "http.disconnect"}

        async def send(message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                at_end.append(stored(storage, cookie))

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/stream",
            "headers": [(b"cookie", f"__session={cookie}".encode())],
        }
        await make_app(storage)(scope, receive, send)

    asyncio.run(run())
    assert at_end == [{"user": "ada", "streamed": True}]


def test_a_stream_the_client_left_before_its_end_commits_nothing_late(storage):
    with TestClient(make_app(storage)) as client:
        client.get("/start")
        cookie = client.cookies["__session"]

    async def stalled(request: Request) -> StreamingResponse:
        async def body():
            yield b"a"
            request.session["streamed"] = True
            await asyncio.sleep(3600)  # the client leaves meanwhile
            yield b"b"

        def later() -> None:
            request.session["background"] = True

        return StreamingResponse(body(), background=BackgroundTask(later))

    app = Starlette(routes=[Route("/", stalled)], middleware=[Middleware(SessionMiddleware, storage=storage)])

    async def run() -> list[bytes]:
        first_chunk = asyncio.Event()
        chunks: list[bytes] = []

        async def receive() -> dict:
            await first_chunk.wait()
            return {"type": "http.disconnect"}

        async def send(message) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message["body"])
                first_chunk.set()

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(b"cookie", f"__session={cookie}".encode())],
        }
        await app(scope, receive, send)  # Starlette stops the stream, runs the task, and returns
        return chunks

    assert asyncio.run(run()) == [b"a"]
    assert stored(storage, cookie) == {"user": "ada"}


def test_a_change_to_a_new_session_in_a_stream_is_logged_and_stores_nothing(storage, caplog):
    with TestClient(make_app(storage)) as client, caplog.at_level(logging.WARNING, logger="websession"):
        assert client.get("/stream").text == "ab"
        assert "__session" not in client.cookies
    assert storage.store.calls == []
    assert "at /stream after the response started was not saved: the session is new" in caplog.text


def test_regenerate_in_a_stream_is_logged_and_changes_nothing(storage, caplog):
    with TestClient(make_app(storage)) as client:
        client.get("/start")
        cookie = client.cookies["__session"]
        with caplog.at_level(logging.WARNING, logger="websession"):
            client.get("/stream/regenerate")
        assert stored(storage, cookie) == {"user": "ada"}
        assert client.cookies["__session"] == cookie
    assert "regenerate() moves the session to a new id" in caplog.text


@pytest.mark.parametrize("path", ["/stream/destroy", "/stream/clear"])
def test_destroy_in_a_stream_deletes_the_record(storage, path):
    with TestClient(make_app(storage)) as client:
        client.get("/start")
        cookie = client.cookies["__session"]
        client.get(path)
        assert stored(storage, cookie) is None  # signed out on the server at once
        response = client.get("/peek")  # the browser's cookie names nothing: cleared now
        assert response.json() == {}
        assert "Expires=Thu, 01 Jan 1970" in response.headers["set-cookie"]


def test_a_stream_that_raises_after_a_change_commits_nothing_late(storage):
    with TestClient(make_app(storage)) as client:
        client.get("/start")
        with pytest.raises(RuntimeError, match="the stream failed"):
            client.get("/stream/fail")
        assert client.get("/peek").json() == {"user": "ada"}


def test_late_changes_of_a_5xx_response_are_dropped_unless_commit_on_error(storage):
    with TestClient(make_app(storage)) as client:
        client.get("/start")
        assert client.get("/500").status_code == 500
        assert client.get("/peek").json() == {"user": "ada"}
    with TestClient(make_app(storage, commit_on_error=True)) as client:
        client.get("/start")
        client.get("/500")
        assert client.get("/peek").json() == {"user": "ada", "streamed": True}


def test_a_store_outage_during_a_late_commit_is_logged(sqlite_storage, outage, caplog):
    async def blocking(request: Request) -> StreamingResponse:
        async def body():
            yield b"a"
            outage.block_writes()
            request.session["streamed"] = True

        return StreamingResponse(body())

    app = Starlette(
        routes=[*ROUTES, Route("/blocking", blocking)],
        middleware=[Middleware(SessionMiddleware, storage=sqlite_storage)],
    )
    with TestClient(app) as client:
        client.get("/start")
        cookie = client.cookies["__session"]
        with caplog.at_level(logging.WARNING, logger="websession"):
            response = client.get("/blocking")
        assert (response.status_code, response.text) == (200, "a")  # the response stands
        outage.end()
        assert stored(sqlite_storage, cookie) == {"user": "ada"}
    assert "session store unavailable, a change made at /blocking was not saved" in caplog.text


def test_cookie_storage_logs_that_a_late_change_needs_a_new_cookie(caplog):
    storage = create_cookie_session_storage(cookie=create_cookie("__session", secrets=[SECRET]))
    with TestClient(make_app(storage)) as client:
        client.get("/start")
        with caplog.at_level(logging.WARNING, logger="websession"):
            client.get("/stream")
        assert client.get("/peek").json() == {"user": "ada"}
    assert "cookie storage keeps the data in the cookie itself" in caplog.text


def test_a_streamed_change_is_there_for_the_next_request_over_uvicorn(sqlite_storage):
    with serve_asgi(make_app(sqlite_storage)) as base, httpx.Client(base_url=base) as client:
        client.get("/start")
        for _ in range(5):
            client.cookies.clear()
            client.get("/start")
            assert client.get("/stream").text == "ab"
            # Committed before the last chunk: no waiting needed.
            assert client.get("/peek").json() == {"user": "ada", "streamed": True}


# -- Flask ----------------------------------------------------------------------------------------


def make_flask(storage, **options) -> flask.Flask:
    app = flask.Flask(__name__)
    app.session_interface = SessionInterface(storage, **options)

    @app.get("/start")
    def flask_start():
        flask.session["user"] = "ada"
        return "ok"

    @app.get("/peek")
    def flask_peek():
        return dict(flask.session)

    def stream_route(rule: str, change, status: int = 200) -> None:
        def view():
            @flask.stream_with_context
            def body():
                yield "a"
                change(flask.session)
                yield "b"

            return flask.Response(body(), status=status)

        app.add_url_rule(rule, rule, view)

    stream_route("/stream", set_key)
    stream_route("/stream/regenerate", regenerate)
    stream_route("/stream/destroy", destroy)
    stream_route("/stream/fail", fail)
    stream_route("/500", set_key, status=500)

    def force(session) -> None:
        session["cart"].append("tea")  # in place, then flagged as Flask apps do
        session.modified = True

    @app.get("/cart")
    def cart():
        flask.session["cart"] = []
        return "ok"

    stream_route("/stream/force", force)
    return app


def test_flask_a_change_in_stream_with_context_is_committed(storage):
    client = make_flask(storage).test_client()
    client.get("/start")
    response = client.get("/stream")
    assert response.text == "ab"
    response.close()
    assert client.get("/peek").json == {"user": "ada", "streamed": True}


def test_flask_session_modified_in_a_stream_is_committed(storage):
    client = make_flask(storage).test_client()
    client.get("/cart")
    client.get("/stream/force", buffered=True)
    assert client.get("/peek").json == {"cart": ["tea"]}


def test_flask_a_stream_that_was_not_read_to_its_end_commits_nothing_late(storage):
    client = make_flask(storage).test_client()
    client.get("/start")
    response = client.get("/stream")
    assert next(response.response) == b"a"
    next(response.response)  # the change is made, but the body is not finished
    response.close()  # the client went away
    assert client.get("/peek").json == {"user": "ada"}


def test_flask_a_change_to_a_new_session_in_a_stream_is_logged(storage, caplog):
    client = make_flask(storage).test_client()
    with caplog.at_level(logging.WARNING, logger="websession"):
        client.get("/stream", buffered=True)
    assert storage.store.calls == []
    assert "at /stream after the response started was not saved: the session is new" in caplog.text


def test_flask_regenerate_in_a_stream_is_logged(storage, caplog):
    client = make_flask(storage).test_client()
    client.get("/start")
    cookie = client.get_cookie("__session").value
    with caplog.at_level(logging.WARNING, logger="websession"):
        client.get("/stream/regenerate", buffered=True)
    assert stored(storage, cookie) == {"user": "ada"}
    assert "regenerate() moves the session to a new id" in caplog.text


def test_flask_destroy_in_a_stream_deletes_the_record(storage):
    client = make_flask(storage).test_client()
    client.get("/start")
    cookie = client.get_cookie("__session").value
    client.get("/stream/destroy", buffered=True)
    assert stored(storage, cookie) is None


def test_flask_a_stream_that_raises_commits_nothing_late(storage):
    client = make_flask(storage).test_client()
    client.get("/start")
    with pytest.raises(RuntimeError, match="the stream failed"):
        client.get("/stream/fail", buffered=True)
    assert client.get("/peek").json == {"user": "ada"}


def test_flask_late_changes_of_a_5xx_response_are_dropped(storage):
    client = make_flask(storage).test_client()
    client.get("/start")
    client.get("/500", buffered=True)
    assert client.get("/peek").json == {"user": "ada"}


def test_flask_a_store_outage_during_a_late_commit_is_logged(sqlite_storage, outage, caplog):
    app = make_flask(sqlite_storage)
    client = app.test_client()
    client.get("/start")
    cookie = client.get_cookie("__session").value
    response = client.get("/stream")
    assert response.text == "ab"
    outage.block_writes()
    with caplog.at_level(logging.WARNING, logger="websession"):
        response.close()
    outage.end()
    assert stored(sqlite_storage, cookie) == {"user": "ada"}
    assert "session store unavailable, a change made at /stream was not saved" in caplog.text


# -- plain WSGI -----------------------------------------------------------------------------------


def wsgi_app(environ, start_response):
    session = wsgi.get_session(environ)
    path = environ["PATH_INFO"]
    if path == "/start":
        session["user"] = "ada"
    if path == "/peek":
        body = repr(sorted(session.items())).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    return _generator(session, path, start_response)


def _generator(session, path, start_response):
    start_response(
        "500 Internal Server Error" if path == "/500" else "200 OK", [("Content-Type", "text/plain")]
    )
    yield b"a"
    if path in ("/stream", "/500"):
        session["streamed"] = True
    elif path == "/stream/destroy":
        session.destroy()
    elif path == "/stream/fail":
        session["streamed"] = True
        raise RuntimeError("the stream failed")
    yield b"b"


def wsgi_client(storage) -> Client:
    return Client(wsgi.SessionMiddleware(wsgi_app, storage))


def test_wsgi_a_change_in_a_generator_body_is_committed(storage):
    client = wsgi_client(storage)
    client.get("/start", buffered=True)
    assert client.get("/stream", buffered=True).text == "ab"
    assert client.get("/peek", buffered=True).text == "[('streamed', True), ('user', 'ada')]"


def test_wsgi_a_change_to_a_new_session_in_a_generator_is_logged(storage, caplog):
    with caplog.at_level(logging.WARNING, logger="websession"):
        wsgi_client(storage).get("/stream", buffered=True)
    assert storage.store.calls == []
    assert "at /stream after the response started was not saved: the session is new" in caplog.text


def test_wsgi_destroy_in_a_generator_deletes_the_record(storage):
    client = wsgi_client(storage)
    client.get("/start", buffered=True)
    cookie = client.get_cookie("__session").value
    client.get("/stream/destroy", buffered=True)
    assert stored(storage, cookie) is None


def test_wsgi_a_generator_that_raises_commits_nothing_late(storage):
    client = wsgi_client(storage)
    client.get("/start", buffered=True)
    with pytest.raises(RuntimeError, match="the stream failed"):
        client.get("/stream/fail", buffered=True)
    assert client.get("/peek", buffered=True).text == "[('user', 'ada')]"


def test_wsgi_a_body_left_unfinished_or_a_5xx_commits_nothing_late(storage):
    client = wsgi_client(storage)
    client.get("/start", buffered=True)
    response = client.get("/stream")
    body = iter(response.response)
    assert next(body) == b"a"
    next(body)  # the change is made, the body is not finished
    response.close()
    client.get("/500", buffered=True)
    assert client.get("/peek", buffered=True).text == "[('user', 'ada')]"


def test_wsgi_exc_info_after_the_start_means_the_response_failed(storage):
    def failing(environ, start_response):
        session = wsgi.get_session(environ)
        session["user"] = "ada"
        start_response("200 OK", [("Content-Type", "text/plain")])
        session["late"] = True
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"failed"]

    sent = []

    def start_response(status, headers, exc_info=None):
        sent.extend(value for name, value in headers if name == "Set-Cookie")
        return lambda data: None

    body = wsgi.SessionMiddleware(failing, storage)(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, start_response
    )
    assert b"".join(body) == b"failed"
    body.close()
    assert stored(storage, sent[0]) == {"user": "ada"}


# -- with lazy loading ----------------------------------------------------------------------------


def test_a_lazy_session_first_loaded_in_a_stream_is_committed_late(storage, counting_store):
    from websession.integrations.asgi import load_session

    async def lazy_stream(request: Request) -> StreamingResponse:
        async def body():
            yield b"a"
            session = await load_session(request)  # the body is the first to use the session
            session["streamed"] = True
            yield b"b"

        return StreamingResponse(body())

    async def untouched(request: Request) -> StreamingResponse:
        async def body():
            yield b"a"
            yield b"b"

        return StreamingResponse(body(), background=BackgroundTask(lambda: None))

    def sign_in(request: Request) -> PlainTextResponse:  # a plain def: it loads on first use
        request.session["user"] = "ada"
        return PlainTextResponse("ok")

    def peek_sync(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    app = Starlette(
        routes=[
            Route("/start", sign_in),
            Route("/peek", peek_sync),
            Route("/lazy-stream", lazy_stream),
            Route("/untouched", untouched),
        ],
        middleware=[Middleware(SessionMiddleware, storage=storage, lazy=True)],
    )
    with TestClient(app) as client:
        client.get("/start")
        counting_store.calls.clear()
        assert client.get("/untouched").text == "ab"
        assert counting_store.calls == []  # never touched, not even late: no store I/O at all
        assert client.get("/lazy-stream").text == "ab"
        assert counting_store.calls == ["read", "update"]
        assert client.get("/peek").json() == {"user": "ada", "streamed": True}


# -- review follow-ups: lazy Flask streams, cookie_options, errors, pathsend ----------------------


def test_flask_a_lazy_session_first_used_by_a_stream_is_committed_late(storage):
    client = make_flask(storage, lazy=True).test_client()
    client.get("/start")
    response = client.get("/stream")  # the body is the first to use the session
    assert response.text == "ab"
    response.close()
    assert client.get("/peek").json == {"user": "ada", "streamed": True}


def test_flask_a_late_commit_gets_the_requests_cookie_options(storage, caplog):
    """cookie_options reads the request; by the late commit, stream_with_context has popped
    the request context, so the request seen at save time is the one it gets."""
    seen: list[str] = []

    def options(request):
        seen.append(request.host)
        return {"max_age": 7200}

    client = make_flask(storage, cookie_options=options).test_client()
    cookie = client.get("/start").headers["Set-Cookie"]
    with caplog.at_level(logging.WARNING, logger="websession"):
        response = client.get("/stream")
        assert response.text == "ab"
        response.close()
    assert caplog.text == ""
    assert client.get("/peek").json == {"user": "ada", "streamed": True}
    assert seen and set(seen) == {"localhost"}
    record = storage.store.read(session_id_of(storage, cookie), None)
    assert 7000 < (record.expires - storage.clock()).total_seconds() <= 7200


def test_a_late_change_that_no_longer_encodes_is_logged_not_raised(storage, caplog):
    """A background task that puts a set into a list read earlier: the late commit cannot
    encode it; the response has gone, so it is logged, never raised into the server."""

    async def view(request: Request) -> PlainTextResponse:
        cart = request.session["cart"]

        def later() -> None:
            cart.append({1, 2})

        return PlainTextResponse("ok", background=BackgroundTask(later))

    async def fill(request: Request) -> PlainTextResponse:
        request.session["cart"] = []
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/fill", fill), Route("/view", view)],
        middleware=[Middleware(SessionMiddleware, storage=storage)],
    )
    with TestClient(app) as client, caplog.at_level(logging.WARNING, logger="websession"):
        client.get("/fill")
        assert client.get("/view").text == "ok"
    assert "/view" in caplog.text


def test_a_pathsend_response_still_commits_its_background_changes(storage):
    """Servers that send files with the http.response.pathsend extension end the body with
    that message instead of a last http.response.body."""
    inner = make_app(storage)

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/file":

            async def pathsend(scope, receive, send):
                scope["session"]["sent"] = "file"  # changed before the response starts
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.pathsend", "path": __file__})
                scope["session"]["after"] = True  # a background task's change

            return await SessionMiddleware(pathsend, storage=storage)(scope, receive, send)
        return await inner(scope, receive, send)

    sent: list[dict] = []

    async def run() -> None:
        messages = iter([{"type": "http.request", "body": b"", "more_body": False}])

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message)

        cookie = None
        for path in ("/start", "/file"):
            headers = [] if cookie is None else [(b"cookie", cookie)]
            scope = {"type": "http", "method": "GET", "path": path, "headers": headers, "query_string": b""}
            messages = iter([{"type": "http.request", "body": b"", "more_body": False}])
            await app(scope, receive, send)
            for message in sent:
                for name, value in message.get("headers", []):
                    if name == b"set-cookie":
                        cookie = value.split(b";")[0]
        assert cookie is not None
        record = storage.store.read(session_id_of(storage, cookie.decode()), None)
        assert record.data == {"user": "ada", "sent": "file", "after": True}

    asyncio.run(run())
