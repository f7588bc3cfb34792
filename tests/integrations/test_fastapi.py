"""FastAPI: the middleware plus typed dependencies, in HTTP and WebSocket endpoints."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request, WebSocket
from fastapi.testclient import TestClient

from websession import ConfigurationError, Session
from websession.integrations.fastapi import SessionDep, SessionMiddleware, StorageDep

from .helpers import stored


def make_app(storage) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, storage=storage)

    @app.post("/login")
    def login(session: SessionDep, name: str = "ada") -> dict[str, str]:
        session.regenerate()
        session["user"] = name
        session.flash("notice", f"Hello {name}")
        return {"user": name}

    @app.get("/me")
    async def me(session: SessionDep) -> dict[str, object]:
        return {"user": session.get("user"), "notice": session.get("notice"), "type": type(session).__name__}

    @app.get("/plain")
    async def plain(request: Request) -> dict[str, object]:
        request.session["visits"] = request.session.get("visits", 0) + 1
        return {"visits": request.session["visits"]}

    @app.get("/record")
    async def record(session: SessionDep, storage: StorageDep) -> dict[str, object]:
        assert session.id is not None
        found = await storage.store.aread(session.id, None)
        return {"stored": None if found is None else found.data}

    @app.post("/logout")
    async def logout(session: SessionDep) -> dict[str, bool]:
        session.destroy()
        return {"ok": True}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        await websocket.send_json({"user": session.get("user")})
        await websocket.close()

    return app


def test_session_dependency_is_typed_and_shared_with_request_session(storage):
    with TestClient(make_app(storage)) as client:
        assert client.post("/login?name=grace").json() == {"user": "grace"}
        assert client.get("/me").json() == {
            "user": "grace",
            "notice": "Hello grace",
            "type": Session.__name__,
        }
        assert client.get("/me").json()["notice"] is None
        assert client.get("/plain").json() == {"visits": 1}
        assert client.get("/record").json() == {"stored": {"user": "grace", "visits": 1}}
        assert stored(storage, client.cookies["__session"]) == {"user": "grace", "visits": 1}


def test_session_dependency_in_a_websocket(storage):
    with TestClient(make_app(storage)) as client:
        client.post("/login?name=ada")
        with client.websocket_connect("/ws") as socket:
            assert socket.receive_json() == {"user": "ada"}


def test_logout_destroys(storage):
    with TestClient(make_app(storage)) as client:
        client.post("/login")
        old = client.cookies["__session"]
        client.post("/logout")
        assert "__session" not in client.cookies
        assert stored(storage, old) is None


def test_missing_middleware_is_a_clear_configuration_error():
    app = FastAPI()

    @app.get("/")
    def endpoint(session: SessionDep) -> dict[str, str]:
        return {}

    with (
        TestClient(app) as client,
        pytest.raises(ConfigurationError, match=r"add websession\.integrations\.asgi\.SessionMiddleware"),
    ):
        client.get("/")


def test_store_down_gives_503(sqlite_storage, outage):
    with TestClient(make_app(sqlite_storage)) as client:
        client.post("/login")
        outage.block_all()
        response = client.get("/me")
        assert response.status_code == 503
        outage.end()
        assert client.get("/me").json()["user"] == "ada"
