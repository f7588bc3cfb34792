"""The ASGI middleware with real Starlette apps: TestClient in process, uvicorn over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware as StarletteSessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from websession import Session, SessionStorage, create_cookie, create_cookie_session_storage
from websession.integrations.asgi import STORAGE_SCOPE_KEY, SessionMiddleware
from websession.stores.sqlite import SqliteStore

from .helpers import SECRET, serve_asgi, session_id_of, stored


async def counter(request: Request) -> JSONResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return JSONResponse({"n": request.session["n"], "user": request.session.get("user")})


async def peek(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.session.get("user"), "keys": sorted(request.session)})


async def login(request: Request) -> RedirectResponse:
    request.session.regenerate()
    request.session["user"] = request.query_params.get("name", "ada")
    request.session.flash("notice", "Welcome")
    return RedirectResponse("/", status_code=303)


async def notice(request: Request) -> JSONResponse:
    return JSONResponse({"notice": request.session.get("notice")})


async def logout(request: Request) -> PlainTextResponse:
    request.session.destroy()
    return PlainTextResponse("bye")


async def with_cookies(request: Request) -> PlainTextResponse:
    request.session["x"] = 1
    response = PlainTextResponse("ok", headers={"Vary": "Accept-Encoding"})
    response.set_cookie("theme", "dark")
    response.set_cookie("lang", "en")
    return response


async def boom(request: Request) -> PlainTextResponse:
    request.session["half"] = "written"
    raise RuntimeError("the view failed")


async def stream(request: Request) -> StreamingResponse:
    request.session["before"] = True

    async def body():
        yield b"a"
        request.session["after"] = True  # after the headers: committed late, the id is unchanged
        yield b"b"

    return StreamingResponse(body())


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"user": websocket.session.get("user")})
    websocket.session["from_socket"] = True
    await websocket.close()


ROUTES = [
    Route("/", counter),
    Route("/peek", peek),
    Route("/login", login, methods=["POST"]),
    Route("/notice", notice),
    Route("/logout", logout, methods=["POST"]),
    Route("/cookies", with_cookies),
    Route("/boom", boom),
    Route("/stream", stream),
    WebSocketRoute("/ws", socket),
]


def make_app(storage, **options) -> Starlette:
    return Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, storage=storage, **options)])


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def session_cookie(response: httpx.Response) -> str | None:
    mine = [c for c in set_cookies(response) if c.startswith("__session=")]
    assert len(mine) <= 1, mine
    return mine[0] if mine else None


# -- the session in scope and the commit table ------------------------------------------------


def test_request_session_is_a_websession_session(storage):
    async def kind(request: Request) -> PlainTextResponse:
        assert request.scope[STORAGE_SCOPE_KEY] is storage
        return PlainTextResponse(type(request.session).__name__)

    app = Starlette(routes=[Route("/", kind)], middleware=[Middleware(SessionMiddleware, storage=storage)])
    with TestClient(app) as client:
        assert client.get("/").text == Session.__name__


def test_counter_persists_across_requests(storage):
    with TestClient(make_app(storage)) as client:
        assert [client.get("/").json()["n"] for _ in range(3)] == [1, 2, 3]
    assert storage.store.calls[:2] == ["create", "read"]


def test_no_cookie_means_no_store_io_and_no_set_cookie(storage, counting_store):
    with TestClient(make_app(storage)) as client:
        response = client.get("/peek")
    assert response.json() == {"user": None, "keys": []}
    assert counting_store.calls == []
    assert session_cookie(response) is None


def test_new_session_with_data_gets_an_id_cookie(storage):
    with TestClient(make_app(storage)) as client:
        response = client.get("/")
    header = session_cookie(response)
    assert header is not None and "Max-Age=3600" in header and "HttpOnly" in header
    assert stored(storage, header) == {"n": 1}


def test_unchanged_session_only_reads_and_rolls_the_cookie(storage, counting_store):
    with TestClient(make_app(storage)) as client:
        client.get("/")
        counting_store.calls.clear()
        response = client.get("/peek")
    assert counting_store.calls == ["read"]
    assert session_cookie(response) is not None  # rolling: a fresh Max-Age


def test_unchanged_session_without_rolling_sends_no_cookie(counting_store):
    storage = SessionStorage(
        cookie=create_cookie("__session", secrets=[SECRET], max_age=60), store=counting_store, rolling=False
    )
    with TestClient(make_app(storage)) as client:
        client.get("/")
        counting_store.calls.clear()
        response = client.get("/peek")
    assert counting_store.calls == ["read"]
    assert session_cookie(response) is None


def test_regenerate_moves_the_data_and_deletes_the_old_record(storage):
    with TestClient(make_app(storage)) as client:
        first = session_cookie(client.get("/"))
        response = client.post("/login?name=grace", follow_redirects=False)
        second = session_cookie(response)
        assert second is not None and session_id_of(storage, second) != session_id_of(storage, first)
        assert stored(storage, first) is None
        assert stored(storage, second) == {"n": 1, "user": "grace", "__flash_notice__": "Welcome"}
        assert client.get("/notice").json() == {"notice": "Welcome"}
        assert client.get("/notice").json() == {"notice": None}


def test_destroy_expires_the_cookie_and_the_old_cookie_stops_working(storage):
    with TestClient(make_app(storage)) as client:
        client.post("/login")
        old = client.cookies["__session"]
        response = client.post("/logout")
        header = session_cookie(response)
        assert header is not None and "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in header
        assert "__session" not in client.cookies
    with TestClient(make_app(storage), cookies={"__session": old}) as replay:
        assert replay.get("/peek").json() == {"user": None, "keys": []}


def test_tampered_cookie_gives_a_fresh_session_and_an_expired_cookie(storage, counting_store):
    with TestClient(make_app(storage), cookies={"__session": "forged.value"}) as client:
        response = client.get("/peek")
    assert response.json() == {"user": None, "keys": []}
    assert counting_store.calls == []  # it never reached the store
    assert "Expires=Thu, 01 Jan 1970" in (session_cookie(response) or "")


def test_other_set_cookie_headers_are_kept_and_vary_is_merged(storage):
    with TestClient(make_app(storage)) as client:
        response = client.get("/cookies")
    cookies = set_cookies(response)
    assert [c.split("=")[0] for c in cookies] == ["theme", "lang", "__session"]
    assert response.headers.get_list("vary") == ["Accept-Encoding", "Cookie"]


def test_vary_cookie_is_not_repeated_and_can_be_turned_off(storage):
    async def varies(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"Vary": "Accept, Cookie"})

    app = Starlette(routes=[Route("/", varies)], middleware=[Middleware(SessionMiddleware, storage=storage)])
    with TestClient(app) as client:
        assert client.get("/").headers.get_list("vary") == ["Accept, Cookie"]
    with TestClient(make_app(storage, vary_cookie=False)) as client:
        assert client.get("/peek").headers.get_list("vary") == []


def test_several_cookie_headers_are_joined(storage):
    with TestClient(make_app(storage)) as client:
        value = client.get("/").cookies["__session"]
    scope_headers = [(b"cookie", b"a=1"), (b"cookie", f"__session={value}".encode())]

    seen = {}

    async def inner(scope, receive, send):
        seen["n"] = scope["session"].get("n")
        await PlainTextResponse("ok")(scope, receive, send)

    async def run():
        messages = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            messages.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "headers": scope_headers}
        await SessionMiddleware(inner, storage)(scope, receive, send)
        return messages

    messages = asyncio.run(run())
    assert seen == {"n": 1}
    assert messages[0]["status"] == 200


def test_a_failing_view_commits_nothing(storage):
    with TestClient(make_app(storage), raise_server_exceptions=False) as client:
        client.get("/")
        response = client.get("/boom")
        assert response.status_code == 500
        assert stored(storage, client.cookies["__session"]) == {"n": 1}


def bare_app(storage, **options) -> SessionMiddleware:
    """The form the class docstring shows: Starlette's error middleware sits inside ours."""
    return SessionMiddleware(Starlette(routes=ROUTES), storage=storage, **options)


def test_a_failing_view_inside_the_wrapping_form_commits_nothing(storage):
    with TestClient(bare_app(storage), raise_server_exceptions=False) as client:
        client.get("/")
        response = client.get("/boom")
        assert response.status_code == 500
        assert set_cookies(response) == []
        assert stored(storage, client.cookies["__session"]) == {"n": 1}


def test_a_failing_new_session_stores_nothing(storage):
    for app in (bare_app(storage), make_app(storage)):
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/boom")
            assert response.status_code == 500
            assert set_cookies(response) == []
    assert storage.store.count() == 0


async def server_error(request: Request) -> PlainTextResponse:
    request.session["half"] = "written"
    return PlainTextResponse("down", status_code=500)


async def not_found(request: Request) -> PlainTextResponse:
    from starlette.exceptions import HTTPException

    request.session["seen_404"] = True
    raise HTTPException(404)


def test_a_5xx_response_commits_nothing_but_a_handled_4xx_does(storage):
    routes = [*ROUTES, Route("/500", server_error), Route("/404", not_found)]
    app = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, storage=storage)])
    with TestClient(app) as client:
        client.get("/")
        assert client.get("/500").status_code == 500
        assert client.get("/404").status_code == 404
        assert stored(storage, client.cookies["__session"]) == {"n": 1, "seen_404": True}


def test_commit_on_error_opts_in_to_committing_failed_requests(storage):
    with TestClient(bare_app(storage, commit_on_error=True), raise_server_exceptions=False) as client:
        client.get("/")
        assert client.get("/boom").status_code == 500
        assert stored(storage, client.cookies["__session"]) == {"n": 1, "half": "written"}


def test_changes_after_the_response_started_are_committed_late(storage):
    with TestClient(make_app(storage)) as client:
        assert client.get("/stream").text == "ab"
        assert stored(storage, client.cookies["__session"]) == {"before": True, "after": True}


def test_cookie_storage_works_under_the_middleware():
    storage = create_cookie_session_storage(cookie=create_cookie("__session", secrets=[SECRET]))
    with TestClient(make_app(storage)) as client:
        assert [client.get("/").json()["n"] for _ in range(2)] == [1, 2]
        assert client.post("/logout").text == "bye"
        assert client.get("/").json()["n"] == 1


# -- lifespan and websockets ------------------------------------------------------------------


def test_lifespan_passes_through_untouched(storage, counting_store):
    events = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(
        routes=ROUTES, lifespan=lifespan, middleware=[Middleware(SessionMiddleware, storage=storage)]
    )
    with TestClient(app):
        pass
    assert events == ["startup", "shutdown"]
    assert counting_store.calls == []

    seen_scopes = []

    async def inner(scope, receive, send):
        seen_scopes.append(dict(scope))

    asyncio.run(SessionMiddleware(inner, storage)({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert seen_scopes == [{"type": "lifespan"}]


def test_websockets_read_the_session_and_commit_it_when_the_app_closes(storage, counting_store):
    with TestClient(make_app(storage)) as client:
        client.post("/login?name=ada")
        counting_store.calls.clear()
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_json() == {"user": "ada"}
            with pytest.raises(WebSocketDisconnect):
                ws.receive_json()
        assert counting_store.calls == ["read", "update"]  # one commit, before the close frame
        assert "from_socket" in client.get("/peek").json()["keys"]


def test_websocket_without_cookie_does_no_store_io(storage, counting_store):
    with TestClient(make_app(storage)) as client, client.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"user": None}
    assert counting_store.calls == []


# -- the store is down ------------------------------------------------------------------------


def test_store_down_while_reading_gives_503_without_running_the_app(sqlite_storage, outage, caplog):
    ran = []

    async def view(request: Request) -> PlainTextResponse:
        ran.append(True)
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[*ROUTES, Route("/view", view)],
        middleware=[Middleware(SessionMiddleware, storage=sqlite_storage)],
    )
    with TestClient(app) as client:
        client.get("/")
        outage.block_all()
        with caplog.at_level(logging.WARNING, logger="websession"):
            response = client.get("/view")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "Traceback" not in response.text and "session store" in response.text
        assert session_cookie(response) is None
        assert ran == []
        assert "database is locked" in caplog.text
        outage.end()
        assert client.get("/").json()["n"] == 2  # the browser kept its cookie


def test_store_down_while_committing_gives_503_and_writes_nothing(sqlite_storage, outage):
    with TestClient(make_app(sqlite_storage)) as client:
        client.get("/")
        cookie = client.cookies["__session"]
        outage.block_writes()
        response = client.get("/")
        assert response.status_code == 503
        assert response.text.startswith("Service Unavailable")
        assert session_cookie(response) is None
        outage.end()
        assert stored(sqlite_storage, cookie) == {"n": 1}
        assert client.get("/").json()["n"] == 2


def test_store_down_for_a_new_session_gives_503(sqlite_storage, outage):
    outage.block_writes()
    with TestClient(make_app(sqlite_storage)) as client:
        response = client.get("/")
    assert response.status_code == 503
    assert session_cookie(response) is None


def test_unavailable_status_and_response_are_configurable(sqlite_storage, outage):
    maintenance = PlainTextResponse("down for maintenance", status_code=503, headers={"Retry-After": "60"})
    with TestClient(make_app(sqlite_storage, on_unavailable=maintenance)) as client:
        client.get("/")
        outage.block_all()
        response = client.get("/")
        assert (response.status_code, response.text, response.headers["retry-after"]) == (
            503,
            "down for maintenance",
            "60",
        )
    outage.end()
    with TestClient(make_app(sqlite_storage, unavailable_status=500)) as client:
        client.get("/")
        outage.block_writes()
        assert client.get("/").status_code == 500


def test_app_calling_a_store_that_is_down_gets_503(sqlite_storage, outage):
    async def destroy(request: Request) -> PlainTextResponse:
        outage.block_all()
        await sqlite_storage.adestroy_session(request.session)
        return PlainTextResponse("gone")

    app = Starlette(
        routes=[*ROUTES, Route("/destroy", destroy)],
        middleware=[Middleware(SessionMiddleware, storage=sqlite_storage)],
    )
    with TestClient(app) as client:
        client.get("/")
        assert client.get("/destroy").status_code == 503


def test_websocket_with_store_down_is_refused(sqlite_storage, outage):
    with TestClient(make_app(sqlite_storage)) as client:
        client.get("/")
        outage.block_all()
        with pytest.raises(Exception) as refused, client.websocket_connect("/ws"):
            pass
    assert getattr(refused.value, "status_code", None) == 503 or "1013" in str(refused.value)


def test_websocket_refused_with_1013_when_the_server_cannot_send_a_response(sqlite_storage, outage):
    with TestClient(make_app(sqlite_storage)) as client:
        client.get("/")  # a real cookie, so the store is asked
        cookie = f"__session={client.cookies['__session']}".encode()
    outage.block_all()
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"cookie", cookie)]}  # no extensions
    asyncio.run(SessionMiddleware(make_app(sqlite_storage), sqlite_storage)(scope, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1013}]


# -- isolation ---------------------------------------------------------------------------------


def test_many_interleaved_users_each_see_only_their_own_session(storage):
    app = make_app(storage)

    async def user(name: str) -> list[str | None]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.post(f"/login?name={name}")
            seen = []
            for _ in range(5):
                seen.append((await client.get("/")).json()["user"])
                await asyncio.sleep(0)
            return seen

    async def everyone():
        return await asyncio.gather(*(user(f"user{i}") for i in range(20)))

    results = asyncio.run(everyone())
    assert results == [[f"user{i}"] * 5 for i in range(20)]


# -- a Starlette app written for Starlette's own SessionMiddleware ----------------------------


async def shop_home(request: Request) -> JSONResponse:
    request.session.setdefault("visits", 0)
    request.session["visits"] += 1
    return JSONResponse(
        {
            "visits": request.session["visits"],
            "user": request.session.get("user"),
            "items": dict(request.session),
        }
    )


async def shop_login(request: Request) -> RedirectResponse:
    form = await request.form()
    request.session.update({"user": form["username"], "cart": []})
    return RedirectResponse("/", status_code=303)


async def shop_add(request: Request) -> JSONResponse:
    cart = request.session.get("cart", [])
    cart.append(request.path_params["item"])
    request.session["cart"] = cart
    return JSONResponse(
        {"cart": request.session["cart"], "has_user": "user" in request.session, "size": len(request.session)}
    )


async def shop_forget(request: Request) -> JSONResponse:
    return JSONResponse(
        {"popped": request.session.pop("cart", None), "missing": request.session.pop("nope", "default")}
    )


async def shop_logout(request: Request) -> RedirectResponse:
    request.session.clear()
    return RedirectResponse("/", status_code=303)


SHOP_ROUTES = [
    Route("/", shop_home),
    Route("/login", shop_login, methods=["POST"]),
    Route("/add/{item}", shop_add, methods=["POST"]),
    Route("/forget", shop_forget, methods=["POST"]),
    Route("/logout", shop_logout, methods=["POST"]),
]


def shop_transcript(app: Starlette, cookie_name: str) -> list[object]:
    """Drive the shop; return what a user sees (and whether the old cookie still works)."""
    seen: list[object] = []
    with TestClient(app) as client:
        seen.append(client.get("/").json())
        seen.append(client.post("/login", data={"username": "ada"}).json())
        seen.append(client.post("/add/tea").json())
        seen.append(client.post("/add/cake").json())
        seen.append(client.post("/forget").json())
        seen.append(client.get("/").json())
        seen.append(client.post("/logout").json())
        seen.append(cookie_name in client.cookies)
    return seen


def test_an_app_written_for_starlettes_session_middleware_runs_unchanged(tmp_path):
    theirs = Starlette(
        routes=SHOP_ROUTES, middleware=[Middleware(StarletteSessionMiddleware, secret_key="s3cret")]
    )
    storage = SessionStorage(
        cookie=create_cookie("session", secrets=["s3cret"], max_age=14 * 24 * 3600),
        store=SqliteStore(tmp_path / "s.db"),
    )
    ours = Starlette(routes=SHOP_ROUTES, middleware=[Middleware(SessionMiddleware, storage=storage)])
    expected = shop_transcript(theirs, "session")
    assert expected[-2] == {"visits": 1, "user": None, "items": {"visits": 1}}  # logout emptied it
    assert shop_transcript(ours, "session") == expected


# -- over real HTTP -----------------------------------------------------------------------------


def test_end_to_end_over_http_with_uvicorn(sqlite_storage, outage):
    with serve_asgi(make_app(sqlite_storage)) as base, httpx.Client(base_url=base) as client:
        assert client.get("/peek").headers.get("set-cookie") is None
        assert [client.get("/").json()["n"] for _ in range(2)] == [1, 2]
        before = client.cookies["__session"]
        response = client.post("/login?name=ada", follow_redirects=True)
        assert response.json() == {"n": 3, "user": "ada"}
        assert client.cookies["__session"] != before
        assert client.get("/notice").json() == {"notice": "Welcome"}
        signed_in = client.cookies["__session"]
        outage.block_all()
        down = client.get("/")
        assert down.status_code == 503 and "set-cookie" not in down.headers
        outage.end()
        assert client.get("/").json()["n"] == 4
        client.post("/logout")
        assert "__session" not in client.cookies
    with (
        serve_asgi(make_app(sqlite_storage)) as base,
        httpx.Client(base_url=base, cookies={"__session": signed_in}) as replay,
    ):
        assert replay.get("/peek").json() == {"user": None, "keys": []}
