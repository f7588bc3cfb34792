"""Typed sessions at run time: ``session.typed`` and ``session.flashes`` are tracked views of the
session, in a real Starlette app (mypy's side is tests/typing/test_typing.py)."""

from __future__ import annotations

from typing import TypedDict, cast

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from websession import Session, SessionStorage, create_cookie, create_memory_session_storage
from websession.integrations.asgi import SessionMiddleware


class Data(TypedDict, total=False):
    user_id: int
    cart: list[int]


class Flash(TypedDict, total=False):
    notice: str


def session_of(request: Request) -> Session[Data, Flash]:
    return cast("Session[Data, Flash]", request.session)


async def sign_in(request: Request) -> JSONResponse:
    session = session_of(request)
    session.typed["user_id"] = int(request.query_params["id"])
    session.flashes["notice"] = "Signed in"
    return JSONResponse({})


async def add(request: Request) -> JSONResponse:
    session = session_of(request)
    session.typed.setdefault("cart", []).append(int(request.query_params["item"]))
    return JSONResponse({"notice": session.flashes.get("notice"), "cart": session.typed.get("cart")})


async def show(request: Request) -> JSONResponse:
    session = session_of(request)
    return JSONResponse({"data": dict(session.typed), "flashes": sorted(session.flashes)})


def _app() -> tuple[TestClient, SessionStorage[Data, Flash]]:
    storage: SessionStorage[Data, Flash] = create_memory_session_storage(
        cookie=create_cookie("s", secrets=["typed-secret"])
    )
    app = Starlette(routes=[Route("/sign-in", sign_in), Route("/add", add), Route("/show", show)])
    return TestClient(SessionMiddleware(app, storage=storage)), storage


def test_typed_views_change_the_session_and_are_committed() -> None:
    client, _ = _app()
    client.get("/sign-in?id=7")
    assert client.get("/show").json() == {"data": {"user_id": 7}, "flashes": ["notice"]}
    # The flash is read once; an in-place edit of a value read through the view is committed.
    assert client.get("/add?item=1").json() == {"notice": "Signed in", "cart": [1]}
    assert client.get("/add?item=2").json() == {"notice": None, "cart": [1, 2]}
    assert client.get("/show").json() == {"data": {"user_id": 7, "cart": [1, 2]}, "flashes": []}


def test_the_data_view_hides_flash_keys_and_the_flash_view_consumes() -> None:
    session: Session[Data, Flash] = Session({"user_id": 1, "__flash_notice__": "hi"}, "x", record=None)
    assert dict(session.typed) == {"user_id": 1}
    assert len(session.typed) == 1
    with pytest.raises(KeyError):
        cast("dict[str, object]", session.typed)["__flash_notice__"]
    assert "notice" in session.flashes and len(session.flashes) == 1
    assert session.flashes["notice"] == "hi"
    assert "notice" not in session.flashes
    assert sorted(session.changes.removed) == ["__flash_notice__"]
    with pytest.raises(KeyError):
        session.flashes["notice"]
    del session.typed["user_id"]
    assert session.data == {} and sorted(session.changes.removed) == ["__flash_notice__", "user_id"]


def test_values_set_through_the_views_are_still_checked_for_json() -> None:
    session: Session[Data, Flash] = Session()
    with pytest.raises(TypeError, match="user_id"):
        cast("dict[str, object]", session.typed)["user_id"] = object()
    with pytest.raises(TypeError, match="__flash_notice__"):
        cast("dict[str, object]", session.flashes)["notice"] = object()
    assert session.data == {}


def test_session_and_storage_are_subscriptable_at_run_time() -> None:
    assert Session[Data, Flash]().typed is not None
    assert SessionStorage[Data, Flash] is not None
