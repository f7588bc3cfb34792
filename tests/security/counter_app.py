"""A Starlette app with one counter per session, behind websession's ASGI middleware.

``GET /start?client=N`` opens a session owned by client N; ``GET /`` adds one to that
session's counter and answers ``{"client": N, "n": <counter>}``. A client that ever sees
another client's number, or a counter that does not rise by exactly one, has caught a leak or
a lost update.

Used in-process by test_redis_faults.py, and by test_load.py as ``load_app:app`` under uvicorn,
configured from the environment: ``WEBSESSION_LOAD_REDIS_URL`` and ``WEBSESSION_LOAD_PREFIX``.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from websession import create_cookie, create_redis_session_storage
from websession.integrations.asgi import SessionMiddleware

SECRET = "counter-app-secret"


async def start(request: Request) -> JSONResponse:
    session = request.session
    session.clear()
    session["client"] = int(request.query_params["client"])
    session["n"] = 0
    return JSONResponse({"client": session["client"], "n": 0})


async def count(request: Request) -> JSONResponse:
    session = request.session
    if "client" not in session:
        return JSONResponse({"client": None, "n": None}, status_code=409)
    session["n"] = session["n"] + 1
    return JSONResponse({"client": session["client"], "n": session["n"]})


def create_app(storage: Any) -> Starlette:
    routes = [Route("/start", start), Route("/", count)]
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, storage=storage)])


def create_storage(url: str, prefix: str, **options: Any) -> Any:
    cookie = create_cookie("__session", secrets=[SECRET], max_age=3600)
    return create_redis_session_storage(url=url, prefix=prefix, cookie=cookie, **options)


def _from_environment() -> Starlette | None:
    url = os.environ.get("WEBSESSION_LOAD_REDIS_URL")
    if url is None:
        return None
    return create_app(create_storage(url, os.environ["WEBSESSION_LOAD_PREFIX"]))


app = _from_environment()
